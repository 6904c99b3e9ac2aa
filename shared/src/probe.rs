//! `facegate health --url`: a container health check that needs no curl in the image (the soak
//! waits for its children's readiness with it too).
//!
//! One HTTP/1.0 GET over plain TCP to a loopback operations endpoint; success is a 200.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("only http://host:port/path URLs are supported, got {0:?}")]
    Url(String),
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: no answer within {0:?}", Duration::from_secs(5))]
    Timeout { url: String },
    #[error("{url} answered {status:?}")]
    Status { url: String, status: String },
}

/// GETs `url` and succeeds on a 200 status.
pub async fn probe(url: &str) -> Result<(), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Url(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ProbeError::Url(url.into()));
    }
    let io = |source| ProbeError::Io {
        url: url.into(),
        source,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(io)?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await.map_err(io)?;
        Ok(String::from_utf8_lossy(&head[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    };
    let status_line = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| ProbeError::Timeout { url: url.into() })??;
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.into(),
            status: status_line,
        })
    }
}
