//! A client of the verifier's HTTP API that plays the app and Amazon Cognito: it builds the
//! trigger events as Cognito sends them, keeps what Create answered, uploads selfies with a
//! real HTTP PUT to the presigned URL, and calls the `/v1` routes with the bearer token.
//!
//! Used by the Verify benchmark (`facegate bench verifier`), the walk-through (`facegate
//! demo`) and the integration tests: the one HTTP client of the workspace's tools and tests. Plain HTTP/1 without TLS: it talks to a verifier and an S3 emulator on
//! loopback (the AWS SDK brings the one TLS stack of the product).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use facegate_verifier::triggers::CUSTOM_CHALLENGE;
use facegate_verifier::triggers::create::public;

// What callers of this client name: methods and answer statuses.
pub use hyper::{Method, StatusCode};

/// How long one request may take before the client gives up on it: far more than the
/// verifier's own deadline (4.5 s), so a timeout here means the server is stuck or gone.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to the verifier (or to a presigned URL) did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what}: the request could not be built: {detail}")]
    Build { what: String, detail: String },
    #[error("{what}: no answer from {url}: {source}")]
    Unreachable {
        what: String,
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{what}: no answer from {url} within {after:?}")]
    Timeout {
        what: String,
        url: String,
        after: Duration,
    },
    #[error("{what}: reading the answer: {detail}")]
    Body { what: String, detail: String },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: StatusCode,
        body: String,
    },
    #[error("{what}: unexpected answer: {detail}")]
    Unexpected { what: String, detail: String },
}

impl ClientError {
    /// The verifier's error code (`cannot-sign-in`), when it answered with an error body.
    pub fn code(&self) -> Option<String> {
        let Self::Status { body, .. } = self else {
            return None;
        };
        let body: Value = serde_json::from_str(body).ok()?;
        body["error"]["code"].as_str().map(str::to_string)
    }
}

/// One of Cognito's custom-auth triggers, as served under `/cognito/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Define,
    Create,
    Verify,
}

impl Trigger {
    /// The route name (`define`).
    pub fn route(self) -> &'static str {
        match self {
            Trigger::Define => "define",
            Trigger::Create => "create",
            Trigger::Verify => "verify",
        }
    }

    /// The `response` Cognito sends with this trigger: every field present, none set.
    pub fn empty_response(self) -> Value {
        match self {
            Trigger::Define => {
                json!({ "challengeName": null, "issueTokens": null, "failAuthentication": null })
            }
            Trigger::Create => json!({
                "publicChallengeParameters": null,
                "privateChallengeParameters": null,
                "challengeMetadata": null,
            }),
            Trigger::Verify => json!({ "answerCorrect": null }),
        }
    }

    /// Cognito's `triggerSource` for a sign-in.
    pub fn source(self) -> &'static str {
        match self {
            Trigger::Define => "DefineAuthChallenge_Authentication",
            Trigger::Create => "CreateAuthChallenge_Authentication",
            Trigger::Verify => "VerifyAuthChallengeResponse_Authentication",
        }
    }
}

/// An HTTP answer: its status, its JSON body (`Null` when empty or not JSON) and the
/// `Server-Timing` phases in milliseconds.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub server_timing: HashMap<String, f64>,
}

/// What Define decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefineDecision {
    /// Present the custom challenge (a selfie).
    Challenge,
    /// The last answer was correct: Cognito issues tokens.
    IssueTokens,
    /// The sign-in fails (unknown, not ACTIVE or locked user, or too many wrong answers).
    Fail,
}

/// What Create issued: the public parameters the app sees, and what Cognito keeps for Verify.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The presigned PUT URL for the selfie; empty for a liveness challenge, whose frames go
    /// to [`frame_urls`](Self::frame_urls).
    pub url: String,
    /// Liveness: the steps asked (`centre,left,right`) and a PUT URL per step.
    pub steps: Option<String>,
    pub frame_urls: Vec<String>,
    /// The object key, which is also the answer.
    pub key: String,
    /// Every public parameter, as the app receives them.
    pub public: Value,
    pub private: Value,
    pub metadata: Value,
}

impl Challenge {
    /// The entry Cognito appends to the session once this challenge was answered.
    pub fn session_entry(&self, correct: bool) -> Value {
        json!({
            "challengeName": CUSTOM_CHALLENGE,
            "challengeResult": correct,
            "challengeMetadata": self.metadata,
        })
    }
}

/// The same picture in bytes no one sent before: random bytes after the image's end, which
/// decoders ignore. Load generators send it as every selfie, so that the face engine's cache of
/// recent analyses helps only where it does in production (between DetectFaces and
/// SearchFacesByImage on one selfie), never across sign-ins.
pub fn fresh_copy(photo: &[u8]) -> Bytes {
    let mut copy = Vec::with_capacity(photo.len() + 16);
    copy.extend_from_slice(photo);
    copy.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    Bytes::from(copy)
}

/// A trigger event as Cognito sends it, for a sign-in of `user` (its `response` unset).
pub fn cognito_event(user: &str, trigger: Trigger, request: Value) -> Value {
    json!({
        "version": "1",
        "triggerSource": trigger.source(),
        "region": "us-east-1",
        "userPoolId": "us-east-1_facegate",
        "userName": user,
        "callerContext": { "awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "facegate-cli" },
        "request": request,
        "response": trigger.empty_response(),
    })
}

/// The verifier's HTTP API at `base`, with its bearer token. Cheap to clone.
#[derive(Clone)]
pub struct VerifierClient {
    base: String,
    token: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl VerifierClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same API with another bearer token (a person's Cognito access token).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            ..self.clone()
        }
    }

    /// `http://host:port`, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends an authorised JSON request to `path`; any status is an answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let body = Bytes::from(body.map(Value::to_string).unwrap_or_default());
        self.send_as(method, path, Some(&self.token), "application/json", body)
            .await
    }

    /// Sends `body` as `content_type` to `path` with `bearer` as the token, or none: for
    /// callers that check how the API treats unusual requests. Any status is an answer.
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let what = format!("{method} {path}");
        let url = format!("{}{path}", self.base);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type);
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::Build {
                what: what.clone(),
                detail: e.to_string(),
            })?;
        self.exchange(what, url, request).await
    }

    /// `GET url`, a whole URL rather than a path of the API, without the bearer token (a
    /// presigned URL's signature is its credential). Any status is an answer.
    pub async fn get_url(&self, url: &str) -> Result<Answer, ClientError> {
        self.without_token(Method::GET, url, Bytes::new()).await
    }

    /// `PUT body` to a whole URL without the bearer token. Any status is an answer.
    pub async fn put_url(&self, url: &str, body: Bytes) -> Result<Answer, ClientError> {
        self.without_token(Method::PUT, url, body).await
    }

    async fn without_token(
        &self,
        method: Method,
        url: &str,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let what = format!("{method} to the presigned URL");
        let request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(body))
            .map_err(|e| ClientError::Build {
                what: what.clone(),
                detail: e.to_string(),
            })?;
        self.exchange(what, url.to_string(), request).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    /// POSTs a trigger event to `/cognito/<trigger>`; the answered event must come back with
    /// 200, for the same user and trigger.
    pub async fn trigger(&self, trigger: Trigger, event: &Value) -> Result<Answer, ClientError> {
        let path = format!("/cognito/{}", trigger.route());
        let answer = self.send(Method::POST, &path, Some(event)).await?;
        let what = || format!("POST {path}");
        if answer.status != StatusCode::OK {
            return Err(ClientError::Status {
                what: what(),
                status: answer.status,
                body: answer.body.to_string(),
            });
        }
        if answer.body["userName"] != event["userName"]
            || answer.body["triggerSource"] != event["triggerSource"]
        {
            return Err(ClientError::Unexpected {
                what: what(),
                detail: format!("not the event that was sent: {}", answer.body),
            });
        }
        Ok(answer)
    }

    /// Define auth challenge for `user` with the session so far.
    pub async fn define(
        &self,
        user: &str,
        session: &[Value],
    ) -> Result<DefineDecision, ClientError> {
        let event = cognito_event(
            user,
            Trigger::Define,
            json!({ "userAttributes": {}, "session": session, "userNotFound": false }),
        );
        let answer = self.trigger(Trigger::Define, &event).await?;
        let response = &answer.body["response"];
        if response["issueTokens"] == true {
            Ok(DefineDecision::IssueTokens)
        } else if response["failAuthentication"] == true {
            Ok(DefineDecision::Fail)
        } else if response["challengeName"] == CUSTOM_CHALLENGE {
            Ok(DefineDecision::Challenge)
        } else {
            Err(ClientError::Unexpected {
                what: "POST /cognito/define".into(),
                detail: format!("no decision in {response}"),
            })
        }
    }

    /// Create auth challenge for `user`.
    pub async fn create(&self, user: &str, session: &[Value]) -> Result<Challenge, ClientError> {
        let event = cognito_event(
            user,
            Trigger::Create,
            json!({
                "userAttributes": {},
                "challengeName": CUSTOM_CHALLENGE,
                "session": session,
                "userNotFound": false,
            }),
        );
        let answer = self.trigger(Trigger::Create, &event).await?;
        let response = &answer.body["response"];
        let public = &response["publicChallengeParameters"];
        let steps = public["steps"].as_str().map(str::to_string);
        let frame_urls: Vec<String> = (1..)
            .map_while(|n| public[format!("frame{n}Url")].as_str().map(str::to_string))
            .collect();
        let session = public[public::LIVENESS_SESSION].is_string();
        let url = match (public["url"].as_str(), &steps) {
            (Some(url), _) => Some(url),
            (None, Some(_)) => Some(""),
            (None, None) if session => Some(""),
            (None, None) => None,
        };
        match (url, public["key"].as_str()) {
            (Some(url), Some(key)) => Ok(Challenge {
                url: url.to_string(),
                steps,
                frame_urls,
                key: key.to_string(),
                public: public.clone(),
                private: response["privateChallengeParameters"].clone(),
                metadata: response["challengeMetadata"].clone(),
            }),
            _ => Err(ClientError::Unexpected {
                what: "POST /cognito/create".into(),
                detail: format!("no url and key in the public parameters: {response}"),
            }),
        }
    }

    /// Verify auth challenge response: `answer` to `challenge`. Returns `answerCorrect` and
    /// the `Server-Timing` phases.
    pub async fn verify(
        &self,
        user: &str,
        challenge: &Challenge,
        answer: &str,
    ) -> Result<(bool, HashMap<String, f64>), ClientError> {
        let event = cognito_event(
            user,
            Trigger::Verify,
            json!({
                "userAttributes": {},
                "privateChallengeParameters": challenge.private,
                "challengeAnswer": answer,
                "userNotFound": false,
            }),
        );
        let answered = self.trigger(Trigger::Verify, &event).await?;
        match answered.body["response"]["answerCorrect"].as_bool() {
            Some(correct) => Ok((correct, answered.server_timing)),
            None => Err(ClientError::Unexpected {
                what: "POST /cognito/verify".into(),
                detail: format!("answerCorrect is not a boolean: {}", answered.body),
            }),
        }
    }

    /// A PUT of `body` to a presigned URL (no bearer token: the signature is the credential).
    /// Any status but 2xx is an error.
    pub async fn put_presigned(&self, url: &str, body: Bytes) -> Result<StatusCode, ClientError> {
        let answer = self.put_url(url, body).await?;
        if !answer.status.is_success() {
            return Err(ClientError::Status {
                what: "PUT to the presigned URL".to_string(),
                status: answer.status,
                body: answer.body.to_string(),
            });
        }
        Ok(answer.status)
    }

    async fn exchange(
        &self,
        what: String,
        url: String,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, ClientError> {
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request)).await
        {
            Err(_) => {
                return Err(ClientError::Timeout {
                    what,
                    url,
                    after: REQUEST_TIMEOUT,
                });
            }
            Ok(Err(source)) => return Err(ClientError::Unreachable { what, url, source }),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let server_timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .map(parse_server_timing)
            .unwrap_or_default();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Body {
                what,
                detail: e.to_string(),
            })?
            .to_bytes();
        // S3 answers XML and some routes nothing at all: only JSON bodies are kept.
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            server_timing,
        })
    }
}

/// `s3;dur=1.5, face;dur=20` -> {s3: 1.5, face: 20}.
pub fn parse_server_timing(header: &str) -> HashMap<String, f64> {
    header
        .split(',')
        .filter_map(|metric| {
            let (name, rest) = metric.trim().split_once(';')?;
            let dur = rest.trim().strip_prefix("dur=")?.parse().ok()?;
            Some((name.to_string(), dur))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_is_parsed() {
        let t = parse_server_timing("s3;dur=1.5, face;dur=20.0, store;dur=3");
        assert_eq!(t["s3"], 1.5);
        assert_eq!(t["face"], 20.0);
        assert_eq!(t["store"], 3.0);
        assert!(parse_server_timing("garbage").is_empty());
    }

    #[test]
    fn events_look_like_cognito_s() {
        let event = cognito_event("zoë", Trigger::Verify, json!({ "challengeAnswer": "k" }));
        assert_eq!(
            event["triggerSource"],
            "VerifyAuthChallengeResponse_Authentication"
        );
        assert_eq!(event["userName"], "zoë");
        assert_eq!(event["request"]["challengeAnswer"], "k");
        assert_eq!(event["response"], json!({ "answerCorrect": null }));
        let entry = Challenge {
            url: "u".into(),
            steps: None,
            frame_urls: Vec::new(),
            key: "k".into(),
            public: json!({ "key": "k" }),
            private: Value::Null,
            metadata: json!("FACEGATE_SELFIE"),
        }
        .session_entry(false);
        assert_eq!(entry["challengeName"], CUSTOM_CHALLENGE);
        assert_eq!(entry["challengeResult"], false);
    }
}
