//! The operations endpoint every long-running role serves: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (it has reached its dependencies).
//!
//! Metrics are recorded through the `metrics` facade everywhere; this module installs the one
//! Prometheus recorder of the process.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Where the operations endpoint listens.
#[derive(clap::Args, Clone, Debug)]
pub struct OpsSettings {
    /// Address of /metrics, /healthz and /readyz (0.0.0.0:9464 in containers).
    #[arg(long, env = "FACEGATE_OPS_LISTEN", default_value = "127.0.0.1:9464")]
    pub ops_listen: SocketAddr,
}

/// Readiness, shared by the parts of a process: ready once every part said so.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first (a test harness): then this
        // handle renders nothing, which is harmless.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[derive(Clone)]
struct OpsState {
    health: Vec<Health>,
}

/// The router, for embedding in a server that already listens (the verifier).
pub fn router(health: Vec<Health>) -> Router {
    prometheus();
    Router::new()
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { health })
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, &'static str) {
    if state.health.iter().all(Health::is_ready) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves the operations endpoint until `shutdown` is cancelled.
pub async fn serve(
    settings: &OpsSettings,
    health: Vec<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.ops_listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "operations endpoint: /metrics /healthz /readyz");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
