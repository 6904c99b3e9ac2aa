//! `facegate-verifier`: the thin service that answers Amazon Cognito's custom-auth challenges by
//! matching a sign-in selfie against the registered face.
//!
//! Read it in this order:
//! - [`settings`]: every knob (`FACEGATE_VERIFIER_*`, `FACEGATE_VERIFY_*`, ...).
//! - [`triggers`]: Define, Create and Verify, Cognito's event in, the same event out. They
//!   stand on [`account`] (may this user sign in?), [`challenge`] (one-time challenges),
//!   [`selfie`] (the uploaded object), [`face`] (quality gate and match) and [`outcome`] (the
//!   `AuthEvent`), all under one [`deadline`] per request.
//! - [`routes`] and [`server`]: the HTTP face of it; [`auth`]: who is calling (the app's bearer
//!   token, or a person's Cognito access token, checked by [`access_token`]).
//! - [`lambda`]: the same triggers as a Lambda function.
//! - [`erase`]: removing a user everywhere (`DELETE /v1/users/<id>` and `facegate erase`).
//!
//! The other side of this API (the app's and Cognito's client, the benchmarks, the liveness
//! attack suite) lives in `facegate-loadgen`, apart from what runs in production.
//!
//! Wiring: [`spawn`] starts the server in-process (tests, `facegate dev`); [`main`] is the
//! standalone role (`facegate verifier`, or `facegate verifier --lambda`).

pub mod access_token;
pub mod account;
pub mod auth;
pub mod challenge;
pub mod deadline;
pub mod erase;
pub mod error;
pub mod face;
pub mod face_liveness;
pub mod lambda;
pub mod liveness;
pub mod outcome;
pub mod routes;
pub mod selfie;
pub mod server;
pub mod service;
pub mod settings;
pub mod timeout;
pub mod triggers;
pub mod upload_url;

use std::net::SocketAddr;
use std::sync::Arc;

use facegate_shared::ops::Health;
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::stack::{Stack, StackArgs, StackError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::VerifierError;
pub use service::Verifier;
pub use settings::VerifierSettings;

/// `facegate verifier`: every setting is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct VerifierArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub verifier: VerifierSettings,
    #[command(flatten)]
    pub face: FaceServiceSettings,
    /// Run as the Cognito trigger Lambda (inside AWS Lambda) instead of an HTTP server.
    #[arg(long)]
    pub lambda: bool,
}

/// Why the verifier could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("FACEGATE_VERIFIER_TOKEN is not set: the HTTP API requires a bearer token")]
    MissingToken,
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Lambda(#[from] lambda::LambdaError),
}

/// A verifier serving HTTP in this process.
pub struct RunningVerifier {
    pub addr: SocketAddr,
    pub verifier: Verifier,
    pub health: Health,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningVerifier {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (its shutdown token was cancelled).
    pub async fn wait(&mut self) -> Result<(), StartError> {
        match self.task.take() {
            Some(task) => task.await?.map_err(StartError::Serve),
            None => Ok(()),
        }
    }
}

/// Starts the HTTP server on `settings.listen` (port 0: any free port) over `stack`; it
/// stops, finishing requests in flight, when `shutdown` is cancelled.
pub async fn spawn(
    stack: Stack,
    limiter: Arc<FaceServiceLimiter>,
    settings: VerifierSettings,
    shutdown: CancellationToken,
) -> Result<RunningVerifier, StartError> {
    settings.validate()?;
    let token = settings
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or(StartError::MissingToken)?;
    let listen = settings.listen;
    let verifier = Verifier::new(stack, limiter, settings);
    let health = Health::default();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let people = access_tokens(verifier.stack(), verifier.settings()).await;
    let router = server::router(verifier.clone(), &token, people, health.clone());
    // The stack was reached (Stack::connect resolved every queue and topic): ready.
    health.mark_ready();
    let task = tokio::spawn(server::serve(listener, router, shutdown));
    tracing::info!(%addr, "verifier listening");
    Ok(RunningVerifier {
        addr,
        verifier,
        health,
        task: Some(task),
    })
}

/// The checker of the user pool's access tokens: the pool in the settings, else the stack's own
/// pool found by name. Without a pool only the app token is accepted (said once in the log).
async fn access_tokens(
    stack: &Stack,
    settings: &VerifierSettings,
) -> Option<access_token::AccessTokens> {
    use facegate_shared::user_pool::UserPool;
    let pool = match (&settings.user_pool_id, &settings.user_pool_client_id) {
        (Some(id), Some(client_id)) => UserPool {
            id: id.clone(),
            client_id: client_id.clone(),
        },
        _ => match UserPool::find(&stack.clients.cognito, &stack.names).await {
            Ok(pool) => pool,
            Err(e) => {
                tracing::warn!(error = %facegate_shared::report::chain(&e),
                    "no user pool: access tokens are refused, only the app token is accepted");
                return None;
            }
        },
    };
    let url = settings.user_pool_jwks_url.clone().unwrap_or_else(|| {
        pool.jwks_url(
            stack
                .aws
                .endpoint(facegate_shared::aws::Service::Cognito)
                .as_deref(),
        )
    });
    match access_token::JwksUrl::new(url.clone()) {
        Ok(source) => {
            tracing::info!(pool = %pool.id, client = %pool.client_id, jwks = %url,
                "access tokens of the user pool are accepted");
            Some(access_token::AccessTokens::new(&pool, Box::new(source)))
        }
        Err(e) => {
            tracing::error!(error = %e, "access tokens are refused");
            None
        }
    }
}

/// `facegate verifier`: the HTTP server until SIGTERM/SIGINT, or with `--lambda` the Cognito
/// trigger Lambda.
pub async fn main(args: VerifierArgs) -> Result<(), StartError> {
    args.verifier.validate()?;
    let stack = Stack::connect(&args.stack).await?;
    let limiter = Arc::new(FaceServiceLimiter::for_stack(&args.face, &stack));
    if args.lambda {
        let verifier = Verifier::new(stack, limiter, args.verifier);
        return Ok(lambda::run(verifier).await?);
    }
    let shutdown = facegate_shared::shutdown::on_signal();
    let mut running = spawn(stack, limiter, args.verifier, shutdown).await?;
    running.wait().await
}
