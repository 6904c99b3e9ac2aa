//! What every queue-worker role does around its handler, written once: the settings all roles
//! share, running one handler on one queue, and the standalone process (connect to the stack,
//! serve `/metrics` `/healthz` `/readyz`, work until SIGTERM or SIGINT, drain, exit 0).

use std::future::Future;
use std::sync::Arc;

use facegate_shared::config::Queue;
use facegate_shared::ops::{self, Health, OpsSettings};
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::stack::{Stack, StackArgs, StackError};
use facegate_shared::worker::{Handler, Message, Worker, WorkerSettings};
use tokio_util::sync::CancellationToken;

/// The settings every standalone worker role takes besides its own.
#[derive(clap::Args, Clone, Debug)]
pub struct RoleArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub face_service: FaceServiceSettings,
    #[command(flatten)]
    pub ops: OpsSettings,
}

/// Why a standalone role stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("the {role} cannot start")]
    Stack {
        role: &'static str,
        #[source]
        source: StackError,
    },
    #[error("the {role}'s operations endpoint on {addr} failed")]
    Ops {
        role: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `handler` on `queue` until `shutdown`, then drains (see the worker runtime).
pub async fn run_worker<H: Handler>(
    name: &'static str,
    stack: &Stack,
    queue: Queue,
    handler: H,
    settings: WorkerSettings,
    health: Health,
    shutdown: CancellationToken,
) {
    Worker::new(
        name,
        stack.clients.sqs.clone(),
        stack.queue_url(queue),
        handler,
        settings,
    )
    .with_health(health)
    .run(shutdown)
    .await
}

/// Whether this delivery is the last one before the queue's redrive policy moves the message
/// to its dead-letter queue: a transient failure now is the registration's final answer.
pub fn is_last_attempt(message: &Message, stack: &Stack) -> bool {
    message.receive_count >= stack.settings.max_receive_count
}

/// A standalone role's process: connects, serves the operations endpoint, runs `role` (the
/// embedded entry point, e.g. `run_indexer`) until SIGTERM or SIGINT and returns once it has
/// drained. An operations endpoint that cannot listen stops the role with an error.
pub async fn standalone<F, Fut>(name: &'static str, args: RoleArgs, role: F) -> Result<(), RoleError>
where
    F: FnOnce(Stack, Arc<FaceServiceLimiter>, WorkerSettings, Health, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let shutdown = facegate_shared::shutdown::on_signal();
    let stack = Stack::connect(&args.stack)
        .await
        .map_err(|source| RoleError::Stack { role: name, source })?;
    let limiter = Arc::new(FaceServiceLimiter::new(&args.face_service));
    let health = Health::default();
    let ops_settings = args.ops.clone();
    let mut ops = tokio::spawn({
        let health = health.clone();
        let shutdown = shutdown.clone();
        async move { ops::serve(&ops_settings, vec![health], shutdown).await }
    });
    let work = role(stack, limiter, args.worker, health, shutdown.clone());
    tokio::pin!(work);
    let ops_result = tokio::select! {
        () = &mut work => {
            shutdown.cancel();
            ops.await
        }
        ended = &mut ops => {
            // The endpoint only ends on its own when it fails: stop the worker too.
            shutdown.cancel();
            work.await;
            ended
        }
    };
    let addr = args.ops.ops_listen;
    match ops_result {
        Ok(Ok(())) => {
            tracing::info!(role = name, "stopped");
            Ok(())
        }
        Ok(Err(source)) => Err(RoleError::Ops {
            role: name,
            addr,
            source,
        }),
        Err(join) => Err(RoleError::Ops {
            role: name,
            addr,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}
