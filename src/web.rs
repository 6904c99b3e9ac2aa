//! The sign-in page in `facegate dev`: the static files of `web/` and, beside them, the
//! `config.json` the page reads (the user pool, its app client, the Cognito endpoint, the
//! verifier's URL), written from the stack just provisioned, so nothing is baked into the page.
//!
//! The listener is bound before the verifier starts: the page's origin is what the verifier
//! allows for CORS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where and what the sign-in page is served from.
#[derive(clap::Args, Clone, Debug)]
pub struct WebSettings {
    /// Address of the sign-in page's server (port 0: any free port).
    #[arg(
        id = "web_listen",
        value_name = "ADDR",
        long = "web-listen",
        env = "FACEGATE_WEB_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,
    /// The page's static files (`web/` of the checkout).
    #[arg(
        id = "web_dir",
        value_name = "DIR",
        long = "web-dir",
        env = "FACEGATE_WEB_DIR",
        default_value = "web"
    )]
    pub dir: PathBuf,
}

/// `config.json`: what the page needs to reach the pool and the verifier.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageConfig {
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    /// `None` on AWS: the page uses Cognito's regional endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cognito_endpoint: Option<String>,
    pub verifier_url: String,
    /// Wrong faces one sign-in allows (Define's `FACEGATE_VERIFY_MAX_ANSWERS`).
    pub max_answers: usize,
    pub lockout: Lockout,
}

/// The failure-alert worker's lock, so the page can say what happens after failures.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lockout {
    pub after_failures: u32,
    pub seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the sign-in page's files are not in {0} (FACEGATE_WEB_DIR): no index.html there")]
    MissingFiles(PathBuf),
    #[error("the sign-in page cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound listener, before the page is configured.
pub struct WebListener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    dir: PathBuf,
}

impl WebListener {
    /// Binds `settings.listen`, after checking the page's files are there.
    pub async fn bind(settings: &WebSettings) -> Result<Self, WebError> {
        if !settings.dir.join("index.html").is_file() {
            return Err(WebError::MissingFiles(settings.dir.clone()));
        }
        let bind = |source| WebError::Bind {
            addr: settings.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Self {
            listener,
            addr,
            dir: settings.dir.clone(),
        })
    }

    /// The page's origin (what the verifier allows for CORS) and URL.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves the files and `config` until `shutdown`.
    pub fn serve(
        self,
        config: PageConfig,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let router = router(&self.dir, config);
        tokio::spawn(async move {
            axum::serve(self.listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        })
    }
}

fn router(dir: &Path, config: PageConfig) -> Router {
    let config_json = move || {
        let config = config.clone();
        async move { ([(header::CACHE_CONTROL, "no-store")], axum::Json(config)).into_response() }
    };
    Router::new()
        .route("/config.json", get(config_json))
        .fallback_service(ServeDir::new(dir))
        // The page is reloaded as it is edited; nothing it serves is secret.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_has_the_names_the_page_reads() {
        let config = PageConfig {
            region: "us-east-1".into(),
            user_pool_id: "us-east-1_Ab".into(),
            client_id: "c".into(),
            cognito_endpoint: None,
            verifier_url: "http://127.0.0.1:8080".into(),
            max_answers: 3,
            lockout: Lockout {
                after_failures: 3,
                seconds: 900,
            },
        };
        let json = serde_json::to_value(&config).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "region": "us-east-1",
                "userPoolId": "us-east-1_Ab",
                "clientId": "c",
                "verifierUrl": "http://127.0.0.1:8080",
                "maxAnswers": 3,
                "lockout": { "afterFailures": 3, "seconds": 900 },
            })
        );
    }
}
