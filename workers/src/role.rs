//! What every queue-worker role does around its handler, written once: the settings all roles
//! share, running one handler on one queue together with the sweep of its dead-letter queue,
//! and the standalone process (connect to the stack, serve `/metrics` `/healthz` `/readyz`,
//! work until SIGTERM or SIGINT, drain, exit 0).
//!
//! Why a dead-letter sweep: SQS moves a message to the dead-letter queue when a *receive* finds
//! it past `maxReceiveCount`. A handler sees its last delivery and marks the registration FAILED
//! when it fails, but a process killed during that last delivery never does, and the message
//! then reaches the dead-letter queue with its registration unfinished. The sweep reads the
//! dead-letter queue every so often, without consuming it (the messages stay there for
//! operators), and lets the handler finish what each message left undone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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

/// A handler that can also settle a message found in its dead-letter queue: make the
/// registration it was about final (FAILED) and leave no face behind. Must be idempotent: the
/// sweep offers the same message again on every round.
pub trait SettlesDeadLetters: Send + Sync + 'static {
    fn settle_dead_letter(&self, body: &str) -> impl Future<Output = ()> + Send;
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

/// [`run_worker`] with a handler made by `make`, and meanwhile a sweep of the queue's dead
/// letters every `sweep_every` by a second handler from `make`.
#[allow(clippy::too_many_arguments)] // The role's parts, each named; a struct would only rename them.
pub async fn run_worker_sweeping_dead_letters<H: Handler + SettlesDeadLetters>(
    name: &'static str,
    stack: &Stack,
    queue: Queue,
    make: impl Fn() -> H,
    settings: WorkerSettings,
    sweep_every: Duration,
    health: Health,
    shutdown: CancellationToken,
) {
    let worker = run_worker(
        name,
        stack,
        queue,
        make(),
        settings,
        health,
        shutdown.clone(),
    );
    let sweep = sweep_dead_letters(
        name,
        stack.clients.sqs.clone(),
        stack.dlq_url(queue).to_string(),
        make(),
        sweep_every,
        shutdown,
    );
    tokio::join!(worker, sweep);
}

/// Every `every`, offers each message of the dead-letter queue to `settler`. A message read is
/// hidden for `every`, so each round sees each message about once; none is deleted.
async fn sweep_dead_letters<S: SettlesDeadLetters>(
    name: &'static str,
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
    settler: S,
    every: Duration,
    shutdown: CancellationToken,
) {
    let hide = i32::try_from(every.as_secs().max(1)).unwrap_or(i32::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        loop {
            let receive = sqs
                .receive_message()
                .queue_url(&dlq_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(hide)
                .send();
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                received = receive => received,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(worker = name, error = %facegate_shared::report::chain(&e), "dead-letter sweep: receive failed");
                    break;
                }
            };
            if messages.is_empty() {
                break;
            }
            for message in &messages {
                if let Some(body) = message.body() {
                    settler.settle_dead_letter(body).await;
                }
            }
        }
    }
}

/// Whether this delivery is the last one before the queue's redrive policy moves the message
/// to its dead-letter queue: a transient failure now is the registration's final answer.
pub fn is_last_attempt(message: &Message, stack: &Stack) -> bool {
    message.receive_count >= stack.settings.max_receive_count
}

/// A standalone role's process: connects, serves the operations endpoint, runs `role` (the
/// embedded entry point, e.g. `run_indexer`) until SIGTERM or SIGINT and returns once it has
/// drained. An operations endpoint that cannot listen stops the role with an error.
pub async fn standalone<F, Fut>(
    name: &'static str,
    args: RoleArgs,
    role: F,
) -> Result<(), RoleError>
where
    F: FnOnce(Stack, Arc<FaceServiceLimiter>, WorkerSettings, Health, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let shutdown = facegate_shared::shutdown::on_signal();
    let stack = Stack::connect(&args.stack)
        .await
        .map_err(|source| RoleError::Stack { role: name, source })?;
    let limiter = Arc::new(FaceServiceLimiter::for_stack(&args.face_service, &stack));
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

#[cfg(test)]
mod tests {
    use crate::{DedupArgs, DedupSettings, DuplicatePolicy, IndexerArgs, IndexerSettings};
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Indexer {
        #[command(flatten)]
        args: IndexerArgs,
    }

    #[derive(Parser)]
    struct Dedup {
        #[command(flatten)]
        args: DedupArgs,
    }

    /// `facegate dev` puts every role's settings on one command line: they must not clash.
    #[derive(Parser)]
    struct Together {
        #[command(flatten)]
        role: super::RoleArgs,
        #[command(flatten)]
        indexer: IndexerSettings,
        #[command(flatten)]
        dedup: DedupSettings,
    }

    #[test]
    fn settings_are_unique_across_roles_and_default_sensibly() {
        Indexer::command().debug_assert();
        Dedup::command().debug_assert();
        Together::command().debug_assert();
        let unset = |name: &str| std::env::var_os(name).is_none();
        let together = Together::try_parse_from(["dev"]).unwrap();
        if unset("FACEGATE_DEDUP_THRESHOLD") && unset("FACEGATE_DEDUP_POLICY") {
            assert_eq!(together.dedup, DedupSettings::default());
            assert_eq!(together.dedup.threshold, 95.0);
            assert_eq!(together.dedup.policy, DuplicatePolicy::Reject);
        }
        if std::env::vars().all(|(k, _)| !k.starts_with("FACEGATE_INDEXER_")) {
            assert_eq!(together.indexer, IndexerSettings::default());
        }
        let dedup =
            Dedup::try_parse_from(["dedup", "--dedup-policy", "flag", "--dedup-threshold", "99"])
                .unwrap();
        assert_eq!(dedup.args.dedup.policy, DuplicatePolicy::Flag);
        assert!(Dedup::try_parse_from(["dedup", "--dedup-threshold", "101"]).is_err());
        assert!(Indexer::try_parse_from(["indexer", "--indexer-max-bytes", "6000000"]).is_err());
    }
}
