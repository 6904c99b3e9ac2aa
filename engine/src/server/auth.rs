//! AWS Signature Version 4 on every API request, as Rekognition checks it.
//!
//! Every facegate client already signs (the AWS SDK always does), so the engine verifies those
//! signatures against the credentials it is configured with ([`AuthSettings`]) and refuses
//! anything else with the error Rekognition would answer. The signature itself is recomputed
//! by `aws-sigv4`, the SDK's own signer, over exactly the headers the caller says it signed:
//! no hand-written canonicalisation to drift from the clients'.
//!
//! Without settings the credentials are the ones facegate's local clients sign with
//! (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when set, otherwise `test` / `test`, see
//! `facegate_shared::aws`), so a local stack works unchanged while an unsigned or foreign
//! request is still refused.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::{HeaderMap, Uri, header};

use super::error::ApiError;

/// The service name in the credential scope of a Rekognition request.
const SERVICE: &str = "rekognition";
/// How far a request's time may be from ours, as AWS allows.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// What facegate's local clients sign with when nothing else is configured.
const LOCAL_DEFAULT_KEY: &str = "test";

/// The credentials callers must sign with.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AuthSettings {
    /// Access key id callers sign with (AWS Signature V4). Default: AWS_ACCESS_KEY_ID when set,
    /// otherwise `test`, which is what facegate's local clients use.
    #[arg(long = "engine-access-key-id", env = "FACEGATE_ENGINE_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Its secret. Default: AWS_SECRET_ACCESS_KEY when set, otherwise `test`.
    #[arg(
        long = "engine-secret-access-key",
        env = "FACEGATE_ENGINE_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<String>,
}

/// The key pair requests are checked against.
#[derive(Clone)]
pub struct Verifier {
    access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, even in a debug print.
        f.debug_struct("Verifier")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused. Each maps onto the error Rekognition answers.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error(
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of AWS4-HMAC-SHA256."
    )]
    Malformed,
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    #[error(
        "Signature expired: the request's X-Amz-Date is more than 15 minutes from the server's time."
    )]
    Expired,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Missing => ApiError::MissingAuthenticationToken(message),
            AuthError::Malformed => ApiError::IncompleteSignature(message),
            AuthError::UnknownKey => ApiError::UnrecognizedClient(message),
            AuthError::Mismatch | AuthError::Expired => ApiError::InvalidSignature(message),
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(AuthError::Malformed)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(AuthError::Malformed);
    };
    // <key>/<yyyymmdd>/<region>/<service>/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthError::Malformed);
    };
    Ok(Authorization {
        access_key_id,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// `X-Amz-Date` (`20261202T011500Z`) as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let time = chrono::NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ").ok()?;
    let seconds = u64::try_from(time.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Compare two signatures without leaking, through timing, how much of one matched.
fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Verifier {
    pub fn new(settings: &AuthSettings) -> Verifier {
        let pick = |configured: &Option<String>, env: &str| {
            configured
                .clone()
                .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
                .unwrap_or_else(|| LOCAL_DEFAULT_KEY.to_string())
        };
        Verifier {
            access_key_id: pick(&settings.access_key_id, "AWS_ACCESS_KEY_ID"),
            secret_access_key: pick(&settings.secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        }
    }

    /// Whether these are the local default credentials (worth a warning off loopback).
    pub fn is_local_default(&self) -> bool {
        self.access_key_id == LOCAL_DEFAULT_KEY && self.secret_access_key == LOCAL_DEFAULT_KEY
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Check the signature of one request (`now` is the server's clock).
    pub fn verify(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed)?;
        let authorization = parse_authorization(value)?;
        if authorization.access_key_id != self.access_key_id {
            return Err(AuthError::UnknownKey);
        }
        if authorization.service != SERVICE {
            return Err(AuthError::Mismatch);
        }
        let time = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_amz_date)
            .ok_or(AuthError::Malformed)?;
        let skew = now
            .duration_since(time)
            .or_else(|_| time.duration_since(now))
            .unwrap_or_default();
        if skew > MAX_CLOCK_SKEW {
            return Err(AuthError::Expired);
        }

        // Exactly the headers the caller signed; aws-sigv4 adds X-Amz-Date from `time` itself.
        let mut signed = Vec::new();
        for name in &authorization.signed_headers {
            if *name == "x-amz-date" {
                continue;
            }
            let values = headers.get_all(*name);
            let mut any = false;
            for value in values {
                signed.push((*name, value.to_str().map_err(|_| AuthError::Mismatch)?));
                any = true;
            }
            if !any {
                return Err(AuthError::Mismatch);
            }
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("http://{host}{path}");
        let request =
            SignableRequest::new(method, url, signed.into_iter(), SignableBody::Bytes(body))
                .map_err(|_| AuthError::Mismatch)?;

        let identity: Identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "facegate-engine",
        )
        .into();
        let mut settings = SigningSettings::default();
        // Sign what the caller listed, nothing less: the SDK's default exclusions (user-agent,
        // ...) are for signers; a verifier must take the caller's list as it is.
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(authorization.region)
            .name(SERVICE)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|_| AuthError::Mismatch)?
            .into();
        let (_, expected) = sign(request, &params)
            .map_err(|_| AuthError::Mismatch)?
            .into_parts();
        if same_signature(&expected, authorization.signature) {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier::new(&AuthSettings {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        })
    }

    /// Sign a request the way the SDK does and return its headers.
    fn signed_headers(key: &str, secret: &str, body: &[u8], time: SystemTime) -> HeaderMap {
        let identity: Identity = Credentials::new(key, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let base = [
            ("host", "127.0.0.1:4599"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "RekognitionService.ListCollections"),
        ];
        let request = SignableRequest::new(
            "POST",
            "http://127.0.0.1:4599/",
            base.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        for (name, value) in base {
            headers.insert(name, value.parse().unwrap());
        }
        for (name, value) in instructions.headers() {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<(), AuthError> {
        verifier().verify("POST", &Uri::from_static("/"), headers, body, now)
    }

    #[test]
    fn a_correctly_signed_request_passes() {
        let now = SystemTime::now();
        let headers = signed_headers(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            b"{}",
            now,
        );
        assert_eq!(check(&headers, b"{}", now), Ok(()));
    }

    #[test]
    fn unsigned_foreign_wrong_and_tampered_requests_are_refused() {
        let now = SystemTime::now();
        assert_eq!(
            check(&HeaderMap::new(), b"{}", now),
            Err(AuthError::Missing)
        );
        let foreign = signed_headers("SOMEONEELSE", "secret", b"{}", now);
        assert_eq!(check(&foreign, b"{}", now), Err(AuthError::UnknownKey));
        let wrong_secret = signed_headers("AKIDEXAMPLE", "not the secret", b"{}", now);
        assert_eq!(check(&wrong_secret, b"{}", now), Err(AuthError::Mismatch));
        let good = signed_headers(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            b"{}",
            now,
        );
        // Another body, or another operation, under the same signature.
        assert_eq!(
            check(&good, br#"{"MaxResults":1}"#, now),
            Err(AuthError::Mismatch)
        );
        let mut retargeted = good.clone();
        retargeted.insert(
            "x-amz-target",
            "RekognitionService.DeleteCollection".parse().unwrap(),
        );
        assert_eq!(check(&retargeted, b"{}", now), Err(AuthError::Mismatch));
        let mut garbled = good.clone();
        garbled.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(check(&garbled, b"{}", now), Err(AuthError::Malformed));
    }

    #[test]
    fn a_replayed_old_request_is_refused() {
        let then = SystemTime::now() - Duration::from_secs(3600);
        let old = signed_headers(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            b"{}",
            then,
        );
        assert_eq!(
            check(&old, b"{}", SystemTime::now()),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn errors_carry_rekognitions_codes() {
        let code = |e: AuthError| ApiError::from(e).code();
        assert_eq!(
            code(AuthError::Missing),
            "MissingAuthenticationTokenException"
        );
        assert_eq!(code(AuthError::UnknownKey), "UnrecognizedClientException");
        assert_eq!(code(AuthError::Mismatch), "InvalidSignatureException");
        assert_eq!(code(AuthError::Expired), "InvalidSignatureException");
        assert_eq!(code(AuthError::Malformed), "IncompleteSignatureException");
    }

    #[test]
    fn the_default_is_what_local_clients_sign_with() {
        // Only meaningful when the test's environment does not set AWS keys itself.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            let v = Verifier::new(&AuthSettings::default());
            assert!(v.is_local_default());
            assert!(!format!("{v:?}").contains("secret_access_key"));
        }
        let parsed = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/rekognition/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
        )
        .unwrap();
        assert_eq!(parsed.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!((parsed.region, parsed.signature), ("us-east-1", "ab"));
    }
}
