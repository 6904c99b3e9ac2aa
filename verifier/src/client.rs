//! The client side of the verifier's HTTP API, for the benchmarks: a plain HTTP/1 client on
//! loopback (no TLS) that plays Cognito, posting the custom-auth trigger events as Cognito
//! builds them (Define, Create, Verify) and uploading selfies to the presigned URL Create
//! hands out.
//!
//! Every request is bounded in time ([`REQUEST_TIMEOUT`]): a benchmark never hangs on a
//! stuck server.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use facegate_shared::ids::UserId;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::triggers::CUSTOM_CHALLENGE;

/// Longest a request may take, answer included (Cognito gives a trigger 5 s; this is for a
/// server under load, which may queue requests).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request that got no usable answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ClientError {
    /// The call: `define`, `create`, `verify`, `upload`.
    pub what: &'static str,
    pub detail: String,
}

/// A trigger event as Cognito sends it.
pub fn cognito_event(user: &UserId, trigger_source: &str, request: Value) -> Value {
    json!({
        "version": "1",
        "triggerSource": trigger_source,
        "region": "us-east-1",
        "userPoolId": "us-east-1_bench",
        "userName": user,
        "callerContext": { "awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "bench" },
        "request": request,
        "response": {},
    })
}

/// What Define answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defined {
    /// Present the custom challenge (the next selfie).
    Challenge,
    IssueTokens,
    /// The sign-in fails: a locked or not-ACTIVE user, or too many wrong answers.
    Fail,
}

/// One challenge as Create issued it.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// The presigned PUT URL for the selfie.
    pub url: String,
    /// The key the selfie goes to: the right answer.
    pub key: String,
    pub private: Value,
    pub metadata: Value,
}

impl Challenge {
    /// The Verify event answering this challenge with its key.
    pub fn verify_event(&self, user: &UserId) -> Value {
        cognito_event(
            user,
            "VerifyAuthChallengeResponse_Authentication",
            json!({
                "userAttributes": {},
                "privateChallengeParameters": self.private,
                "challengeAnswer": self.key,
                "userNotFound": false,
            }),
        )
    }

    /// The session entry Cognito adds once Verify answered `correct`.
    pub fn answered(&self, correct: bool) -> Value {
        json!({
            "challengeName": CUSTOM_CHALLENGE,
            "challengeResult": correct,
            "challengeMetadata": self.metadata,
        })
    }
}

/// An HTTP/1 client for one verifier (its base URL and bearer token) and presigned URLs.
#[derive(Clone)]
pub struct HttpClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpClient {
    pub fn new(base: String, token: String) -> Self {
        Self {
            base,
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// POSTs a trigger event to `/cognito/<trigger>`; returns the answered event and the
    /// Server-Timing phases (ms).
    pub async fn cognito(
        &self,
        trigger: &'static str,
        event: Value,
    ) -> Result<(Value, HashMap<String, f64>), ClientError> {
        let fail = |detail: String| ClientError {
            what: trigger,
            detail,
        };
        let request = hyper::Request::post(format!("{}/cognito/{trigger}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(event.to_string())))
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let timing = response
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .map(parse_server_timing)
                .unwrap_or_default();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(fail(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            let value = serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))?;
            Ok((value, timing))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }

    /// Define with the session so far.
    pub async fn define(&self, user: &UserId, session: &[Value]) -> Result<Defined, ClientError> {
        let event = cognito_event(
            user,
            "DefineAuthChallenge_Authentication",
            json!({ "userAttributes": {}, "session": session, "userNotFound": false }),
        );
        let (answered, _) = self.cognito("define", event).await?;
        let response = &answered["response"];
        if response["issueTokens"] == true {
            Ok(Defined::IssueTokens)
        } else if response["failAuthentication"] == true {
            Ok(Defined::Fail)
        } else if response["challengeName"] == CUSTOM_CHALLENGE {
            Ok(Defined::Challenge)
        } else {
            Err(ClientError {
                what: "define",
                detail: format!("an answer that decides nothing: {answered}"),
            })
        }
    }

    /// Create: a new challenge for `user`.
    pub async fn create(&self, user: &UserId, session: &[Value]) -> Result<Challenge, ClientError> {
        let event = cognito_event(
            user,
            "CreateAuthChallenge_Authentication",
            json!({
                "challengeName": CUSTOM_CHALLENGE, "session": session, "userAttributes": {},
                "userNotFound": false,
            }),
        );
        let (created, _) = self.cognito("create", event).await?;
        let response = &created["response"];
        let public = &response["publicChallengeParameters"];
        match (public["url"].as_str(), public["key"].as_str()) {
            (Some(url), Some(key)) => Ok(Challenge {
                url: url.to_string(),
                key: key.to_string(),
                private: response["privateChallengeParameters"].clone(),
                metadata: response["challengeMetadata"].clone(),
            }),
            _ => Err(ClientError {
                what: "create",
                detail: format!("no upload URL and key: {created}"),
            }),
        }
    }

    /// Verify the answer to `challenge`; returns `answerCorrect` and the Server-Timing phases.
    pub async fn verify(
        &self,
        user: &UserId,
        challenge: &Challenge,
    ) -> Result<(bool, HashMap<String, f64>), ClientError> {
        let (answered, timing) = self.cognito("verify", challenge.verify_event(user)).await?;
        match answered["response"]["answerCorrect"].as_bool() {
            Some(correct) => Ok((correct, timing)),
            None => Err(ClientError {
                what: "verify",
                detail: format!("answerCorrect is not a boolean: {answered}"),
            }),
        }
    }

    /// PUTs `body` to a presigned URL.
    pub async fn put(&self, url: &str, body: Bytes) -> Result<(), ClientError> {
        let fail = |detail: String| ClientError {
            what: "upload",
            detail,
        };
        let request = hyper::Request::put(url)
            .body(Full::new(body))
            .map_err(|e| fail(e.to_string()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| fail(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(response.status().to_string()));
        }
        Ok(())
    }
}

/// `s3;dur=1.5, face;dur=20` -> {s3: 1.5, face: 20}.
fn parse_server_timing(header: &str) -> HashMap<String, f64> {
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
    fn server_timing_and_session_entries() {
        let t = parse_server_timing("s3;dur=1.5, face;dur=20.0, store;dur=3");
        assert_eq!(t["s3"], 1.5);
        assert_eq!(t["store"], 3.0);
        let challenge = Challenge {
            url: "http://127.0.0.1/x".into(),
            key: "signin/u/c.jpg".into(),
            private: json!({}),
            metadata: json!("FACEGATE_SELFIE"),
        };
        assert_eq!(challenge.answered(false)["challengeResult"], false);
        let user = UserId::parse("bench-user").unwrap();
        let event = challenge.verify_event(&user);
        assert_eq!(event["request"]["challengeAnswer"], "signin/u/c.jpg");
        assert_eq!(event["userName"], "bench-user");
    }
}
