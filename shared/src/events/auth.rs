//! `AuthEvent`: the outcome of one sign-in answer, published by the verifier on the
//! `auth-events` topic. Failures reach the failure-alert worker through the `alerts` queue,
//! whose subscription filters on the `result` message attribute.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Topic;
use crate::events::sns::Publishable;
use crate::ids::{ChallengeId, DeviceId, UserId};
use crate::quality::QualityIssue;

/// The name of the message attribute carrying [`AuthEvent::result_code`].
pub const RESULT_ATTRIBUTE: &str = "result";

/// One sign-in answer and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthEvent {
    /// Unique per answer: counting failures is idempotent on it.
    pub event_id: uuid::Uuid,
    pub user_id: UserId,
    /// `"result": "success"`, or `"result": "failure"` with a `"reason"`.
    #[serde(flatten)]
    pub outcome: AuthOutcome,
    /// The face match score (0-100), when a match was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The client's address, when known (Cognito passes it in `userContextData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// The device the client names (`clientMetadata.deviceId`), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    pub channel: AuthChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<ChallengeId>,
    pub time: DateTime<Utc>,
}

/// Signed in, or refused for a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum AuthOutcome {
    Success,
    Failure { reason: AuthFailureReason },
}

/// Why a sign-in answer was refused. On the wire, a kebab-case code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthFailureReason {
    /// The selfie is not the registered face (similarity below the threshold).
    NoMatch,
    /// The answer is not the key this challenge issued (another user's, an old one, a path).
    WrongAnswer,
    ChallengeExpired,
    /// The challenge was already answered once.
    ChallengeReused,
    /// Nothing was uploaded at the issued key.
    SelfieMissing,
    /// The object was written before the challenge was issued (a replay).
    SelfieStale,
    SelfieTooLarge,
    NotAnImage,
    NotRegistered,
    /// Registered, but not (yet, or any more) ACTIVE.
    NotActive,
    Locked,
    /// Rekognition failed or timed out: never a success.
    FaceServiceError,
    /// Another dependency (the challenge store, the bucket) failed: never a success.
    ServiceError,
    /// Liveness: a frame the challenge asked for was not uploaded.
    LivenessFrameMissing,
    /// Liveness: a frame was written before the challenge was issued or after its window.
    LivenessFrameOutsideWindow,
    /// Liveness: a frame does not show the pose its step asked for (a still photo, a flat
    /// photo tilted to fake a turn, the steps out of order).
    LivenessWrongPose,
    /// Liveness: the frames are not all the registered person.
    LivenessNotSamePerson,
    /// Liveness: a frame repeats another frame of this challenge or of an earlier one (the
    /// same bytes or a re-encoded copy).
    LivenessReplayedFrame,
    /// Liveness (`aws-face-liveness`): the challenge's Face Liveness session did not end live
    /// at the configured confidence (not finished, expired, or judged not live).
    LivenessNotConfirmed,
    /// Liveness: the device or the source address failed too many liveness checks lately
    /// and is timed out (counted by the failure-alert worker).
    LivenessTimedOut,
    /// The selfie failed the quality gate (`no-face`, `multiple-faces`, ...).
    #[serde(untagged)]
    Quality(QualityIssue),
}

/// How the answer reached the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthChannel {
    /// Cognito's verify-auth-challenge trigger.
    Cognito,
    /// `POST /v1/verify`.
    Api,
}

/// Where a sign-in came from, as far as the limits on liveness checks are concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Device(DeviceId),
    Source(IpAddr),
}

impl Origin {
    /// The device and the source address, those that are known.
    pub fn known(device: Option<&DeviceId>, source: Option<IpAddr>) -> Vec<Origin> {
        device
            .cloned()
            .map(Origin::Device)
            .into_iter()
            .chain(source.map(Origin::Source))
            .collect()
    }

    /// `device#<id>` or `source#<address>`.
    pub fn key(&self) -> String {
        match self {
            Origin::Device(device) => format!("device#{device}"),
            Origin::Source(ip) => format!("source#{ip}"),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Device(device) => write!(f, "device {device}"),
            Origin::Source(ip) => write!(f, "source {ip}"),
        }
    }
}

impl AuthFailureReason {
    /// A failed liveness check: what the per-device and per-source limits count. A refusal
    /// because of a timeout is not one, so a timed-out device does not extend its own
    /// timeout by trying.
    pub fn is_failed_liveness_check(self) -> bool {
        use AuthFailureReason as R;
        matches!(
            self,
            R::LivenessFrameMissing
                | R::LivenessFrameOutsideWindow
                | R::LivenessWrongPose
                | R::LivenessNotSamePerson
                | R::LivenessReplayedFrame
                | R::LivenessNotConfirmed
        )
    }

    /// A refusal the stack caused, not the person: a dependency (the face service, a store)
    /// failed or timed out, so Verify failed closed without judging the answer. Published like
    /// any refusal, but counted against nobody: an outage must not lock out the users who
    /// keep trying through it.
    pub fn is_the_stacks_fault(self) -> bool {
        matches!(
            self,
            AuthFailureReason::FaceServiceError | AuthFailureReason::ServiceError
        )
    }
}

impl AuthEvent {
    /// The device and the source address the answer came from, those that are known.
    pub fn origins(&self) -> Vec<Origin> {
        Origin::known(self.device.as_ref(), self.source)
    }

    /// `success` or `failure`: the `result` message attribute.
    pub fn result_code(&self) -> &'static str {
        match self.outcome {
            AuthOutcome::Success => "success",
            AuthOutcome::Failure { .. } => "failure",
        }
    }
}

impl Publishable for AuthEvent {
    const TOPIC: Topic = Topic::AuthEvents;

    fn attributes(&self) -> Vec<(&'static str, String)> {
        vec![(RESULT_ATTRIBUTE, self.result_code().to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: AuthFailureReason) -> AuthEvent {
        AuthEvent {
            event_id: uuid::Uuid::nil(),
            user_id: UserId::parse("zoë user").unwrap(),
            outcome: AuthOutcome::Failure { reason },
            similarity: Some(42.5),
            source: Some("203.0.113.7".parse().unwrap()),
            device: Some(DeviceId::parse("phone-1").unwrap()),
            channel: AuthChannel::Cognito,
            challenge_id: Some(ChallengeId::parse("c-1").unwrap()),
            time: "2026-11-21T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_wire_shape_is_flat_and_readable() {
        let json = serde_json::to_value(failure(AuthFailureReason::NoMatch)).unwrap();
        assert_eq!(json["result"], "failure");
        assert_eq!(json["reason"], "no-match");
        assert_eq!(json["source"], "203.0.113.7");
        assert_eq!(json["device"], "phone-1");
        let json = serde_json::to_value(failure(AuthFailureReason::Quality(
            QualityIssue::MultipleFaces,
        )))
        .unwrap();
        assert_eq!(json["reason"], "multiple-faces");
    }

    #[test]
    fn only_failed_liveness_checks_count_towards_a_device_timeout() {
        use AuthFailureReason as R;
        for counted in [
            R::LivenessWrongPose,
            R::LivenessReplayedFrame,
            R::LivenessFrameMissing,
            R::LivenessNotConfirmed,
        ] {
            assert!(counted.is_failed_liveness_check(), "{counted:?}");
        }
        for not_counted in [
            R::NoMatch,
            R::Locked,
            R::LivenessTimedOut,
            R::FaceServiceError,
            R::Quality(QualityIssue::NoFace),
        ] {
            assert!(!not_counted.is_failed_liveness_check(), "{not_counted:?}");
        }
        let json = serde_json::to_value(failure(R::LivenessTimedOut)).unwrap();
        assert_eq!(json["reason"], "liveness-timed-out");
    }

    #[test]
    fn only_a_dependency_failing_is_the_stacks_fault() {
        use AuthFailureReason as R;
        assert!(R::FaceServiceError.is_the_stacks_fault());
        assert!(R::ServiceError.is_the_stacks_fault());
        for theirs in [
            R::NoMatch,
            R::WrongAnswer,
            R::SelfieMissing,
            R::LivenessWrongPose,
            R::Quality(QualityIssue::NoFace),
        ] {
            assert!(!theirs.is_the_stacks_fault(), "{theirs:?}");
        }
    }

    #[test]
    fn every_shape_round_trips() {
        let mut events: Vec<AuthEvent> = [
            AuthFailureReason::WrongAnswer,
            AuthFailureReason::SelfieStale,
            AuthFailureReason::Quality(QualityIssue::NoFace),
        ]
        .into_iter()
        .map(failure)
        .collect();
        events.push(AuthEvent {
            outcome: AuthOutcome::Success,
            source: None,
            device: None,
            challenge_id: None,
            ..failure(AuthFailureReason::NoMatch)
        });
        for event in events {
            let again: AuthEvent =
                serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
            assert_eq!(event, again);
        }
    }

    #[test]
    fn result_is_the_filtered_attribute() {
        assert_eq!(
            failure(AuthFailureReason::NoMatch).attributes(),
            vec![("result", "failure".to_string())]
        );
        let ok = AuthEvent {
            outcome: AuthOutcome::Success,
            ..failure(AuthFailureReason::NoMatch)
        };
        assert_eq!(ok.attributes(), vec![("result", "success".to_string())]);
    }

    #[test]
    fn arrives_wrapped_in_an_sns_envelope_with_its_result_attribute() {
        let body = include_str!("../../tests/fixtures/sns-auth-event-ministack.json");
        let note = crate::events::sns::Notification::<AuthEvent>::parse(body).unwrap();
        assert_eq!(
            note.event.outcome,
            AuthOutcome::Failure {
                reason: AuthFailureReason::NoMatch
            }
        );
        assert_eq!(note.attribute(RESULT_ATTRIBUTE), Some("failure"));
    }

    #[test]
    fn unknown_reasons_are_refused() {
        let mut json = serde_json::to_value(failure(AuthFailureReason::NoMatch)).unwrap();
        json["reason"] = "made-up".into();
        assert!(serde_json::from_value::<AuthEvent>(json).is_err());
    }
}
