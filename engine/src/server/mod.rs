//! The Rekognition-compatible HTTP server.
//!
//! `POST /` speaks AWS JSON 1.1 ([`protocol`]) and routes to one handler per operation
//! ([`ops`]); `GET /healthz` says the engine is up. Requests are bounded: at most
//! `max_concurrent_requests` run at once (the rest wait), and a body larger than
//! `max_body_bytes` is refused as `ImageTooLargeException` (images are what make bodies big).
//! Every API request must carry a valid AWS Signature V4 ([`auth`]); the health check needs none.
//! `/liveness/sessions/...` is the client's side of the Face Liveness stand-in
//! ([`liveness_frames`]), under the same concurrency limit.

pub mod auth;
pub mod calls;
pub mod error;
pub mod image;
pub mod liveness_frames;
pub mod ops;
pub mod protocol;
pub mod quality;
pub mod recent;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::collection::Store;
use error::ApiError;
use image::ImageReader;

/// What every request handler shares.
pub struct EngineState {
    pub images: ImageReader,
    pub store: Arc<Store>,
    /// For the collection ARNs.
    pub region: String,
    pub max_body_bytes: usize,
    /// Checks every request's signature.
    pub verifier: auth::Verifier,
    /// API calls per second, as they arrive.
    pub calls: Arc<calls::CallCounts>,
    /// The Face Liveness stand-in's open sessions.
    pub liveness: Arc<crate::liveness::Sessions>,
}

/// The HTTP routes over `state`.
pub fn router(state: Arc<EngineState>, max_concurrent_requests: usize) -> Router {
    // Only API calls queue for a slot: a health check must answer even when the engine is busy.
    // Calls are counted as they arrive, before they wait for a slot.
    // One semaphore for every route under it: frames and API calls share the slots.
    let limit = GlobalConcurrencyLimitLayer::new(max_concurrent_requests.max(1));
    let api = post(rekognition)
        .layer(limit.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.calls.clone(),
            calls::count,
        ));
    Router::new()
        .route("/", api)
        .route(
            "/liveness/sessions/{id}",
            get(liveness_frames::steps).layer(limit.clone()),
        )
        .route(
            "/liveness/sessions/{id}/frames/{step}",
            put(liveness_frames::put_frame).layer(limit),
        )
        .route("/healthz", get(|| async { "ok" }))
        // The body is read (with its own limit) inside the handler, to answer in Rekognition's
        // error format instead of a bare 413.
        .layer(DefaultBodyLimit::disable())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` completes, then finish the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn rekognition(
    State(state): State<Arc<EngineState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::ImageTooLarge(format!(
                "Image size is too large: request bodies are limited to {} bytes.",
                state.max_body_bytes
            ))
            .into_response();
        }
    };
    // The signature covers the body, so it is checked once the body is read, before anything
    // else happens.
    if let Err(refused) = state.verifier.verify(
        method.as_str(),
        &uri,
        &headers,
        &body,
        std::time::SystemTime::now(),
    ) {
        tracing::info!(reason = ?refused, "unauthenticated request refused");
        return ApiError::from(refused).into_response();
    }
    let operation = match protocol::operation(&headers) {
        Ok(op) => op.to_owned(),
        Err(e) => return e.into_response(),
    };
    let started = std::time::Instant::now();
    let result = ops::dispatch(&state, &operation, &body).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(response) => {
            tracing::debug!(%operation, elapsed_ms, "ok");
            response
        }
        Err(error) => {
            tracing::info!(%operation, elapsed_ms, code = error.code(), %error, "refused");
            error.into_response()
        }
    }
}
