//! The outcome of one sign-in answer, published as an `AuthEvent` on the `auth-events` topic
//! (message attribute `result`, so the alerts queue receives failures only), and counted in
//! the process's metrics.

use std::net::IpAddr;

use chrono::Utc;
use facegate_shared::events::{self, AuthChannel, AuthEvent, AuthFailureReason, AuthOutcome};
use facegate_shared::ids::{ChallengeId, DeviceId, UserId};

use crate::service::Verifier;

/// Everything the event says about one answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub user_id: UserId,
    pub outcome: AuthOutcome,
    pub similarity: Option<f32>,
    pub source: Option<IpAddr>,
    pub device: Option<DeviceId>,
    pub channel: AuthChannel,
    pub challenge_id: Option<ChallengeId>,
}

impl Answer {
    pub fn failure(user_id: UserId, reason: AuthFailureReason, channel: AuthChannel) -> Self {
        Self {
            user_id,
            outcome: AuthOutcome::Failure { reason },
            similarity: None,
            source: None,
            device: None,
            channel,
            challenge_id: None,
        }
    }

    pub fn is_success(&self) -> bool {
        self.outcome == AuthOutcome::Success
    }

    /// The reason code (`no-match`), or `success`.
    pub fn code(&self) -> String {
        match self.outcome {
            AuthOutcome::Success => "success".into(),
            AuthOutcome::Failure { reason } => reason_code(reason),
        }
    }
}

/// The wire spelling of a reason (`selfie-missing`, `multiple-faces`).
pub fn reason_code(reason: AuthFailureReason) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(code)) => code,
        _ => format!("{reason:?}"),
    }
}

/// Publishes the answer. A publishing failure is logged and counted but does not change the
/// answer: the user's sign-in should not depend on the alerting path being up.
pub async fn publish(verifier: &Verifier, answer: &Answer) {
    let event = AuthEvent {
        event_id: uuid::Uuid::new_v4(),
        user_id: answer.user_id.clone(),
        outcome: answer.outcome,
        similarity: answer.similarity,
        source: answer.source,
        device: answer.device.clone(),
        channel: answer.channel,
        challenge_id: answer.challenge_id.clone(),
        time: Utc::now(),
    };
    let code = answer.code();
    metrics::counter!("facegate_verifier_answers_total", "result" => event.result_code(), "reason" => code.clone())
        .increment(1);
    tracing::info!(user = %answer.user_id, result = event.result_code(), reason = %code, similarity = ?answer.similarity, "sign-in answer");
    if let Err(e) = events::publish(verifier.sns(), verifier.auth_events_topic(), &event).await {
        metrics::counter!("facegate_verifier_publish_failures_total").increment(1);
        tracing::error!(error = %facegate_shared::report::chain(&e), "could not publish the auth event");
    }
}
