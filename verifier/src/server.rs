//! The HTTP server: routes, the bearer-token guard, limits and timeouts, and the operations
//! endpoints (`/metrics`, `/healthz`, `/readyz`, open without a token).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use facegate_shared::ops::{self, Health};
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::access_token::AccessTokens;
use crate::auth::{Guard, authenticate, require_app};
use crate::error::{VerifierError, error_body};
use crate::routes::{cognito, registrations, users, verify};
use crate::service::Verifier;

/// Every route. `people` checks access tokens; `None` accepts the app token only.
pub fn router(
    verifier: Verifier,
    token: &str,
    people: Option<AccessTokens>,
    health: Health,
) -> Router {
    let settings = verifier.settings().clone();
    let app_only = Router::new()
        .route("/cognito/define", post(cognito::define))
        .route("/cognito/create", post(cognito::create))
        .route("/cognito/verify", post(cognito::verify))
        .route("/v1/verify", post(verify::verify))
        .route_layer(middleware::from_fn(require_app));
    // Where a person acts on their own data (or the app on anyone's).
    let self_service = Router::new()
        .route("/v1/registrations", post(registrations::create))
        .route("/v1/registrations/{user_id}", get(registrations::show))
        .route("/v1/users/{user_id}", delete(users::erase));
    let guard = Guard {
        app_token: Arc::from(token),
        people,
    };
    let api = app_only
        .merge(self_service)
        .route_layer(middleware::from_fn_with_state(guard, authenticate))
        .with_state(verifier);
    // Erasure walks the collection and the bucket: it gets more time than a sign-in.
    let timeout = settings.deadline().max(Duration::from_secs(30)) + Duration::from_secs(1);
    let router = api
        .merge(ops::router(vec![health]))
        .fallback(|| async { VerifierError::NotFound("route".into()) })
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(json_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::GATEWAY_TIMEOUT,
                    timeout,
                ))
                // A backstop for bodies announced larger than any route accepts; each route
                // also reads within its own, smaller limit.
                .layer(RequestBodyLimitLayer::new(settings.max_body_bytes() + 1024))
                .layer(ConcurrencyLimitLayer::new(
                    settings.max_concurrent_requests.max(1),
                )),
        );
    // Outermost, so that a preflight is answered before the token guard and every answer
    // (errors too) carries the headers the page needs to read it.
    match settings.cors_origin.as_deref().and_then(cors) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for exactly one origin (the sign-in page): the methods and headers the self-service
/// routes take, preflights cached for ten minutes. `None` if the origin is not a header value
/// (settings validation refuses such an origin first).
fn cors(origin: &str) -> Option<CorsLayer> {
    use axum::http::{Method, header};
    let origin = HeaderValue::from_str(origin).ok()?;
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// Errors produced by layers (timeout, body limit, unknown method) come without a body:
/// give them the same JSON shape as every other error.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => "deadline-exceeded",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "invalid-request",
        _ => "internal",
    };
    let message = status.canonical_reason().unwrap_or("error");
    let mut fresh = (status, axum::Json(error_body(code, message))).into_response();
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    fresh
}

/// Serves `router` on `listener` until `shutdown`, with each connection's peer address
/// available to the routes (the source of `/v1/verify` answers).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
