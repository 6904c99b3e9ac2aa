//! Cognito access tokens: how a person proves who they are to the self-service routes.
//!
//! A token is accepted only if it is an RS256 JWT (the algorithm is pinned: `none`, HMAC and
//! anything else are refused before any key is looked at) signed by one of the pool's keys
//! (its JWKS, cached, fetched again when a token names a key id the cache does not know), with
//! the pool's issuer, `token_use` = `access`, this app client's `client_id` and an `exp` still
//! in the future. What it proves is the `username` claim: the facegate user id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use facegate_shared::ids::UserId;
use facegate_shared::user_pool::UserPool;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Why a token was refused. Each has its own log line; clients see only [`Self::code`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm {0} is not RS256")]
    Algorithm(String),
    #[error("the token names no key id")]
    NoKeyId,
    #[error("key {0} is not one of the pool's keys")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued by {0}, not this pool")]
    Issuer(String),
    #[error("token_use is {0:?}, not access")]
    NotAnAccessToken(String),
    #[error("the token is for another app client")]
    Client,
    #[error("claims missing or malformed: {0}")]
    Claims(String),
    #[error("the token's username is not a facegate user id")]
    User,
    #[error("the pool's signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The stable code of the 401 answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token-expired",
            Self::KeysUnavailable(_) => "token-unverifiable",
            _ => "invalid-token",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    token_use: String,
    client_id: String,
    username: String,
}

/// Where the pool's keys come from.
pub trait KeySource: Send + Sync {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<JwkSet, TokenError>> + Send + '_>>;
}

/// The pool's JWKS over HTTP(S).
pub struct JwksUrl {
    url: String,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Empty<bytes::Bytes>,
    >,
}

impl JwksUrl {
    pub fn new(url: String) -> Result<Self, TokenError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| TokenError::KeysUnavailable(format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Self { url, client })
    }
}

impl KeySource for JwksUrl {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<JwkSet, TokenError>> + Send + '_>> {
        Box::pin(async move {
            use http_body_util::BodyExt;
            let unavailable = |e: &dyn std::fmt::Display| {
                TokenError::KeysUnavailable(format!("GET {}: {e}", self.url))
            };
            let uri: hyper::Uri = self.url.parse().map_err(|e| unavailable(&e))?;
            let response = tokio::time::timeout(Duration::from_secs(3), self.client.get(uri))
                .await
                .map_err(|e| unavailable(&e))?
                .map_err(|e| unavailable(&e))?;
            if !response.status().is_success() {
                return Err(unavailable(&response.status()));
            }
            let body = http_body_util::Limited::new(response.into_body(), 256 * 1024)
                .collect()
                .await
                .map_err(|e| unavailable(&e))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| unavailable(&e))
        })
    }
}

/// A fixed key set (unit tests).
impl KeySource for JwkSet {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<JwkSet, TokenError>> + Send + '_>> {
        let keys = self.clone();
        Box::pin(async move { Ok(keys) })
    }
}

struct Cached {
    keys: JwkSet,
    fetched: Option<Instant>,
}

/// Checks access tokens of one pool and app client. Cheap to clone.
#[derive(Clone)]
pub struct AccessTokens {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    client_id: String,
    source: Box<dyn KeySource>,
    cache: RwLock<Cached>,
}

/// A token naming an unknown key fetches the keys again, but not more often than this, so
/// made-up key ids cannot turn the verifier into a JWKS flood.
const REFETCH_AFTER: Duration = Duration::from_secs(30);

impl AccessTokens {
    pub fn new(pool: &UserPool, source: Box<dyn KeySource>) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: pool.issuer(),
                client_id: pool.client_id.clone(),
                source,
                cache: RwLock::new(Cached {
                    keys: JwkSet { keys: Vec::new() },
                    fetched: None,
                }),
            }),
        }
    }

    /// Who `token` says the caller is, if every check passes.
    pub async fn check(&self, token: &str) -> Result<UserId, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false; // access tokens carry client_id, not aud
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::InvalidIssuer => TokenError::Issuer(unverified_issuer(token)),
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm("mismatch".into()),
                _ => TokenError::Claims(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if claims.token_use != "access" {
            return Err(TokenError::NotAnAccessToken(claims.token_use));
        }
        if claims.client_id != self.inner.client_id {
            return Err(TokenError::Client);
        }
        UserId::parse(claims.username).map_err(|_| TokenError::User)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        {
            let cache = self.inner.cache.read().await;
            if let Some(jwk) = cache.keys.find(kid) {
                return DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey(kid.into()));
            }
            if cache.fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
                return Err(TokenError::UnknownKey(kid.into()));
            }
        }
        let mut cache = self.inner.cache.write().await;
        // Another request may have refreshed the keys while this one waited for the lock.
        if cache.keys.find(kid).is_none()
            && cache.fetched.is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
        {
            let keys = self.inner.source.fetch().await?;
            tracing::info!(
                keys = keys.keys.len(),
                "fetched the user pool's signing keys"
            );
            *cache = Cached {
                keys,
                fetched: Some(Instant::now()),
            };
        }
        let jwk = cache
            .keys
            .find(kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.into()))?;
        DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey(kid.into()))
    }
}

/// The `iss` a refused token claimed, for the log line only.
fn unverified_issuer(token: &str) -> String {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("iss").and_then(|i| i.as_str()).map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const POOL: &str = "us-east-1_Test1";

    fn pool() -> UserPool {
        UserPool {
            id: POOL.into(),
            client_id: "client-1".into(),
        }
    }

    fn jwks(n: u8) -> JwkSet {
        let text = match n {
            1 => include_str!("testdata/jwks-1.json"),
            _ => include_str!("testdata/jwks-2.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn sign(key: u8, kid: &str, claims: serde_json::Value) -> String {
        let pem = match key {
            1 => include_bytes!("testdata/test-key-1.pem").as_slice(),
            _ => include_bytes!("testdata/test-key-2.pem").as_slice(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": pool().issuer(),
            "token_use": "access",
            "client_id": "client-1",
            "username": "alice",
            "sub": "0000",
            "exp": chrono::Utc::now().timestamp() + 600,
        })
    }

    fn with(
        mut claims: serde_json::Value,
        key: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        claims[key] = value;
        claims
    }

    fn checker() -> AccessTokens {
        AccessTokens::new(&pool(), Box::new(jwks(1)))
    }

    #[tokio::test]
    async fn a_good_token_names_its_user() {
        let token = sign(1, "test-key-1", claims());
        assert_eq!(checker().check(&token).await.unwrap().as_str(), "alice");
    }

    #[tokio::test]
    async fn every_bad_token_is_refused_for_its_own_reason() {
        let tokens = checker();
        let now = chrono::Utc::now().timestamp();
        let cases = [
            (
                sign(1, "test-key-1", with(claims(), "exp", json!(now - 60))),
                TokenError::Expired,
            ),
            (
                sign(
                    1,
                    "test-key-1",
                    with(
                        claims(),
                        "iss",
                        json!("https://cognito-idp.us-east-1.amazonaws.com/other"),
                    ),
                ),
                TokenError::Issuer("https://cognito-idp.us-east-1.amazonaws.com/other".into()),
            ),
            (
                sign(1, "test-key-1", with(claims(), "token_use", json!("id"))),
                TokenError::NotAnAccessToken("id".into()),
            ),
            (
                sign(
                    1,
                    "test-key-1",
                    with(claims(), "client_id", json!("client-2")),
                ),
                TokenError::Client,
            ),
            (
                sign(1, "test-key-1", with(claims(), "username", json!("a/b"))),
                TokenError::User,
            ),
            // Another key, claiming to be the pool's.
            (sign(2, "test-key-1", claims()), TokenError::Signature),
            (
                sign(2, "test-key-2", claims()),
                TokenError::UnknownKey("test-key-2".into()),
            ),
            ("not.a.jwt".to_string(), TokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(tokens.check(&token).await, Err(expected));
        }
    }

    #[tokio::test]
    async fn tampering_and_other_algorithms_are_refused() {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let good = sign(1, "test-key-1", claims());
        let parts: Vec<&str> = good.split('.').collect();
        // Same signature, another user.
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&with(claims(), "username", json!("mallory"))),
            parts[2]
        );
        assert_eq!(checker().check(&tampered).await, Err(TokenError::Signature));
        // `alg: none`, no signature.
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "test-key-1"})),
            parts[1]
        );
        assert!(checker().check(&none).await.is_err());
        // HS256 keyed with something public: refused before any key is used.
        let hs = encode(
            &Header {
                kid: Some("test-key-1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims(),
            &EncodingKey::from_secret(b"public"),
        )
        .unwrap();
        assert_eq!(
            checker().check(&hs).await,
            Err(TokenError::Algorithm("HS256".into()))
        );
    }
}
