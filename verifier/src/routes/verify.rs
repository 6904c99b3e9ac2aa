//! `POST /v1/verify?user_id=<id>` with the selfie as the body (`image/jpeg` or `image/png`):
//! sign-in for apps without Cognito. The same checks as the Verify trigger minus the challenge
//! (the calling app holds the bearer token and is trusted to have taken the selfie itself):
//! the user must be ACTIVE and not locked, the image must pass the quality gate and match.
//!
//! Answers `{"user_id": "...", "verified": true}` or `{"verified": false, "reason": "..."}`;
//! the similarity is never returned (it would help an attacker tune a forgery). The outcome is
//! published on `auth-events` like any other answer, with the caller's address as the source.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use facegate_shared::events::AuthChannel;
use facegate_shared::ids::UserId;

use super::read_body;
use crate::account::{self, SignInStatus};
use crate::error::VerifierError;
use crate::face;
use crate::liveness::LivenessPolicy;
use crate::outcome::{self, Answer};
use crate::service::Verifier;
use crate::triggers::Timings;
use crate::triggers::verify::answer_from;

pub async fn verify(
    State(verifier): State<Verifier>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, VerifierError> {
    let user = user_from_query(query.as_deref())?;
    // One selfie proves nothing about liveness: with liveness on, sign-in goes through the
    // challenge (Cognito's triggers), never through this shortcut.
    if verifier.settings().liveness != LivenessPolicy::Off {
        return Err(VerifierError::Forbidden(
            "liveness is on: sign in through the Cognito challenge",
        ));
    }
    let limit = usize::try_from(verifier.settings().max_selfie_bytes).unwrap_or(usize::MAX);
    let selfie = read_body(body, limit).await?;
    let deadline = verifier.deadline();
    let mut timings = Timings::default();

    let started = Instant::now();
    let status = account::status(&verifier, &user, Utc::now(), &deadline).await?;
    timings.store += started.elapsed();
    let mut answer = match status {
        SignInStatus::Refused(reason) => Answer::failure(user, reason, AuthChannel::Api),
        SignInStatus::Allowed { face_id } => {
            let started = Instant::now();
            let verdict = face::verify_selfie(&verifier, selfie, &face_id, &deadline).await;
            timings.face += started.elapsed();
            answer_from(user, verdict, AuthChannel::Api)
        }
    };
    answer.source = Some(peer.ip());
    let started = Instant::now();
    outcome::publish(&verifier, &answer).await;
    timings.store += started.elapsed();

    let reason = (!answer.is_success()).then(|| answer.code());
    let body = serde_json::json!({
        "user_id": answer.user_id,
        "verified": answer.is_success(),
        "reason": reason,
    });
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&timings.server_timing()) {
        response.headers_mut().insert("server-timing", value);
    }
    Ok(response)
}

/// The `user_id` query parameter, URL-decoded and validated.
fn user_from_query(query: Option<&str>) -> Result<UserId, VerifierError> {
    let user = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "user_id")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| {
            VerifierError::invalid("verify request", "missing query parameter user_id")
        })?;
    Ok(UserId::parse(user)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_query() {
        assert_eq!(
            user_from_query(Some("user_id=zo%C3%AB+user"))
                .unwrap()
                .as_str(),
            "zoë user"
        );
        assert!(user_from_query(None).is_err());
        assert!(user_from_query(Some("user_id=..%2Fetc")).is_err());
    }
}
