//! `facegate-engine`: the local face engine.
//!
//! A real face detector (YuNet) and embedder (SFace) behind Amazon Rekognition's own JSON API,
//! so the rest of facegate uses `aws-sdk-rekognition` everywhere and only the endpoint differs.
//!
//! - [`face`]: the pipeline (decode, detect, align, embed, measure) and the calibrated similarity.
//! - [`collection`]: collections of faces, durable on disk, searched exactly in memory.
//! - [`server`]: the Rekognition-compatible HTTP server, one file per operation.
//! - [`liveness`]: the local stand-in for Rekognition Face Liveness.
//! - [`bench`]: `facegate bench engine`.
//!
//! [`run`] is `facegate engine`; [`spawn`] starts the same server in-process (tests, `facegate
//! dev`, the benchmark) and returns its address and a handle to stop it.

pub mod bench;
pub mod collection;
pub mod face;
pub mod liveness;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use facegate_shared::aws::AwsSettings;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use collection::{Store, StoreError};
use face::{FaceModels, ModelError, ModelSettings};
use server::EngineState;
use server::image::ImageReader;

/// `facegate engine`: every setting is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct EngineArgs {
    /// Address to listen on (loopback by default). Every API request must be signed (AWS
    /// Signature V4) with the engine's credentials, below.
    #[arg(long, env = "FACEGATE_ENGINE_LISTEN", default_value = "127.0.0.1:4599")]
    pub listen: SocketAddr,
    /// Where collections are kept.
    #[arg(
        long,
        env = "FACEGATE_ENGINE_DATA_DIR",
        default_value = ".facegate/engine"
    )]
    pub data_dir: PathBuf,
    /// Requests handled at the same time; more wait their turn.
    #[arg(
        long,
        env = "FACEGATE_ENGINE_MAX_CONCURRENT_REQUESTS",
        default_value_t = 64
    )]
    pub max_concurrent_requests: usize,
    /// Largest request body, in bytes (a 5 MB image is ~6.7 MB of base64).
    #[arg(long, env = "FACEGATE_ENGINE_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub models: ModelSettings,
    /// Where `S3Object` images are read from.
    #[command(flatten)]
    pub aws: AwsSettings,
    /// The credentials callers must sign with.
    #[command(flatten)]
    pub auth: server::auth::AuthSettings,
}

impl EngineArgs {
    /// Defaults for an in-process engine: a random loopback port and the given data folder.
    pub fn local(data_dir: PathBuf, models: ModelSettings) -> Self {
        EngineArgs {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            max_concurrent_requests: 64,
            max_body_bytes: 8 * 1024 * 1024,
            models,
            aws: AwsSettings::local(),
            auth: Default::default(),
        }
    }
}

/// Why the engine could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("loading the face models: {0}")]
    Models(#[from] ModelError),
    #[error("opening the collections in {data_dir}: {source}")]
    Store {
        data_dir: PathBuf,
        source: StoreError,
    },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("the engine task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("benchmark: {0}")]
    Bench(String),
}

/// `facegate engine`: serve until SIGTERM or SIGINT, then finish the requests in flight.
pub async fn run(args: EngineArgs) -> Result<(), EngineError> {
    let mut engine = spawn(args).await?;
    tracing::info!(addr = %engine.addr(), "face engine listening");
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down: finishing requests in flight"),
        result = engine.wait() => return result,
    }
    engine.shutdown().await
}

/// A server running in this process.
pub struct RunningEngine {
    addr: SocketAddr,
    calls: Arc<server::calls::CallCounts>,
    stop: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningEngine {
    /// Where it listens (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: what `AWS_ENDPOINT_URL_REKOGNITION` should be.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `(epoch second, API calls that arrived in it)`, oldest first, for the last hour.
    pub fn calls_per_second(&self) -> Vec<(u64, u32)> {
        self.calls.snapshot()
    }

    /// A token that stops the server when cancelled (e.g. tied to `facegate dev`'s shutdown).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stop accepting, finish the requests in flight, and wait until the server is gone.
    pub async fn shutdown(mut self) -> Result<(), EngineError> {
        self.stop.cancel();
        self.wait().await
    }

    /// Wait until the server stops (after [`RunningEngine::stop_token`] is cancelled).
    pub async fn wait(&mut self) -> Result<(), EngineError> {
        match self.task.take() {
            Some(task) => task.await?.map_err(EngineError::Serve),
            None => Ok(()),
        }
    }
}

impl Drop for RunningEngine {
    /// Dropping the handle stops the server (tests never leak one).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Load the models and start the server on `args.listen`.
pub async fn spawn(args: EngineArgs) -> Result<RunningEngine, EngineError> {
    let settings = args.models.clone();
    // Reading ~40 MB of model and warming it up: blocking work.
    let models = tokio::task::spawn_blocking(move || FaceModels::load(&settings)).await??;
    spawn_with_models(args, Arc::new(models)).await
}

/// Start the server with models already loaded (tests share one copy between servers).
pub async fn spawn_with_models(
    args: EngineArgs,
    models: Arc<FaceModels>,
) -> Result<RunningEngine, EngineError> {
    let data_dir = args.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .map_err(|source| EngineError::Store {
            data_dir: args.data_dir.clone(),
            source,
        })?;
    let s3 = args.aws.s3(&args.aws.sdk_config().await);
    let verifier = server::auth::Verifier::new(&args.auth);
    if verifier.is_local_default() && !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "the engine listens beyond loopback with the local default credentials test/test: \
             set FACEGATE_ENGINE_ACCESS_KEY_ID and FACEGATE_ENGINE_SECRET_ACCESS_KEY"
        );
    }
    let state = Arc::new(EngineState {
        images: ImageReader {
            models,
            s3,
            recent: Default::default(),
        },
        store: Arc::new(store),
        region: args.aws.region.clone(),
        max_body_bytes: args.max_body_bytes,
        verifier,
        calls: Default::default(),
        liveness: Default::default(),
    });
    let calls = state.calls.clone();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| EngineError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EngineError::Bind {
        addr: args.listen,
        source,
    })?;
    let stop = CancellationToken::new();
    let router = server::router(state, args.max_concurrent_requests);
    let task = tokio::spawn(server::serve(
        listener,
        router,
        stop.clone().cancelled_owned(),
    ));
    Ok(RunningEngine {
        addr,
        calls,
        stop,
        task: Some(task),
    })
}

/// SIGTERM (containers) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engine: EngineArgs,
    }

    #[derive(Parser)]
    struct BenchCli {
        #[command(flatten)]
        bench: bench::BenchArgs,
    }

    #[test]
    fn settings_do_not_clash_and_default_to_loopback() {
        Cli::command().debug_assert();
        BenchCli::command().debug_assert();
        let cli = Cli::try_parse_from(["engine"]).unwrap();
        assert_eq!(cli.engine.listen, SocketAddr::from(([127, 0, 0, 1], 4599)));
        assert_eq!(cli.engine.data_dir, PathBuf::from(".facegate/engine"));
        let bench = BenchCli::try_parse_from(["bench"]).unwrap().bench;
        assert_eq!(bench.sizes, [10_000, 100_000, 1_000_000]);
        assert_eq!(bench.clients, 2);
    }
}
