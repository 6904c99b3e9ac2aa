//! Sign-in challenges: issued by Create, answered at most once by Verify.
//!
//! A challenge lives in two places. Cognito carries its *private parameters* from Create to
//! Verify (the expected key, the registered face id, the issue time: never shown to the
//! client). The `challenges` table holds the server's own record, so a challenge can be
//! *claimed* exactly once: Verify's conditional update fails for an answered, expired or
//! unknown challenge, whatever the private parameters say.
//!
//! The private parameters are not trusted for anything that decides: whoever can send a
//! trigger event (the app token's holder, a compromised forwarding Lambda) can write them.
//! They only name the challenge; the face to match and the issue time come from the record
//! the claim returns ([`Claimed`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, SecondsFormat, Utc};
use facegate_shared::config::Table;
use facegate_shared::events::AuthFailureReason;
use facegate_shared::ids::{ChallengeId, UserId};
use facegate_shared::objects::SigninUpload;
use facegate_shared::tables::challenges as attr;

use crate::deadline::Deadline;
use crate::error::VerifierError;
use crate::liveness::Sequence;
use crate::service::Verifier;

/// Names of the private challenge parameters.
mod private {
    pub const CHALLENGE_ID: &str = "challengeId";
    pub const KEY: &str = "key";
    pub const FACE_ID: &str = "faceId";
    pub const ISSUED_AT: &str = "issuedAt";
    pub const STEPS: &str = "livenessSteps";
}

/// One issued challenge.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuedChallenge {
    pub upload: SigninUpload,
    /// The registered face the selfie must match.
    pub face_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Liveness: the poses asked, one frame each (`None`: one selfie at [`key`](Self::key)).
    pub steps: Option<Sequence>,
    /// Face Liveness: the session opened for this challenge (recorded, never read back from
    /// the private parameters).
    pub liveness_session: Option<String>,
}

impl IssuedChallenge {
    /// A single-selfie challenge.
    pub fn new(
        user: UserId,
        face_id: String,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Self {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(3));
        Self {
            upload: SigninUpload {
                user_id: user,
                challenge_id: ChallengeId::random(),
            },
            face_id,
            issued_at: now,
            expires_at: now + ttl,
            steps: None,
            liveness_session: None,
        }
    }

    /// A liveness challenge asking for `steps`.
    pub fn with_steps(mut self, steps: Sequence) -> Self {
        self.steps = Some(steps);
        self
    }

    /// A Face Liveness challenge, bound to `session`.
    pub fn with_liveness_session(mut self, session: String) -> Self {
        self.liveness_session = Some(session);
        self
    }

    /// The object keys of the liveness frames, in step order: `<key stem>_<n>.jpg`, n from 1.
    /// The answer is still [`key`](Self::key): it names the challenge, the frames are read
    /// from these keys.
    pub fn frame_keys(&self) -> Vec<String> {
        let count = self.steps.as_ref().map_or(0, |s| s.steps().len());
        let key = self.key();
        let stem = key.strip_suffix(".jpg").unwrap_or(&key);
        (1..=count).map(|n| format!("{stem}_{n}.jpg")).collect()
    }

    /// The selfie's object key: the one correct answer.
    pub fn key(&self) -> String {
        self.upload.key()
    }

    pub fn private_parameters(&self) -> HashMap<String, String> {
        let mut params = HashMap::from([
            (
                private::CHALLENGE_ID.into(),
                self.upload.challenge_id.to_string(),
            ),
            (private::KEY.into(), self.key()),
            (private::FACE_ID.into(), self.face_id.clone()),
            (
                private::ISSUED_AT.into(),
                self.issued_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ]);
        if let Some(steps) = &self.steps {
            params.insert(private::STEPS.into(), steps.to_string());
        }
        params
    }

    /// Reads back what [`private_parameters`](Self::private_parameters) wrote; `None` when
    /// anything is missing or malformed (the answer is then refused).
    pub fn from_private_parameters(
        params: &HashMap<String, String>,
        ttl: std::time::Duration,
    ) -> Option<Self> {
        let upload = SigninUpload::parse_key(params.get(private::KEY)?).ok()?;
        if upload.challenge_id.as_str() != params.get(private::CHALLENGE_ID)? {
            return None;
        }
        let issued_at = DateTime::parse_from_rfc3339(params.get(private::ISSUED_AT)?)
            .ok()?
            .with_timezone(&Utc);
        let ttl = chrono::Duration::from_std(ttl).ok()?;
        let steps = match params.get(private::STEPS) {
            None => None,
            Some(text) => Some(text.parse().ok()?),
        };
        Some(Self {
            upload,
            face_id: params.get(private::FACE_ID)?.clone(),
            issued_at,
            expires_at: issued_at + ttl,
            steps,
            liveness_session: None,
        })
    }
}

/// Records a new challenge (Create). `expires_at` doubles as the TTL attribute: DynamoDB
/// sweeps the item eventually, and Verify's condition refuses it from that second on.
pub async fn record(
    verifier: &Verifier,
    challenge: &IssuedChallenge,
    deadline: &Deadline,
) -> Result<(), VerifierError> {
    let s = |v: String| AttributeValue::S(v);
    let mut call = verifier
        .dynamodb()
        .put_item()
        .table_name(verifier.table(Table::Challenges))
        .item(
            attr::CHALLENGE_ID,
            s(challenge.upload.challenge_id.to_string()),
        )
        .item(attr::USER_ID, s(challenge.upload.user_id.to_string()))
        .item(attr::KEY, s(challenge.key()))
        .item(attr::FACE_ID, s(challenge.face_id.clone()))
        .item(
            attr::ISSUED_AT,
            s(challenge
                .issued_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)),
        )
        .item(
            attr::EXPIRES_AT,
            AttributeValue::N(challenge.expires_at.timestamp().to_string()),
        )
        .condition_expression("attribute_not_exists(#id)")
        .expression_attribute_names("#id", attr::CHALLENGE_ID);
    if let Some(steps) = &challenge.steps {
        call = call.item(attr::LIVENESS_STEPS, s(steps.to_string()));
    }
    if let Some(session) = &challenge.liveness_session {
        call = call.item(attr::LIVENESS_SESSION, s(session.clone()));
    }
    let call = call.send();
    deadline
        .run("PutItem challenges", call)
        .await?
        .map_err(|e| VerifierError::dependency("PutItem challenges", e))?;
    Ok(())
}

/// What the server itself recorded for a challenge it has now claimed.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The registered face the selfie must match.
    pub face_id: String,
    pub issued_at: DateTime<Utc>,
    /// The liveness steps this challenge asked for, as recorded (not as the event says).
    pub steps: Option<Sequence>,
    /// The Face Liveness session this challenge was bound to, as recorded.
    pub liveness_session: Option<String>,
}

impl Claimed {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let steps = match text(attr::LIVENESS_STEPS) {
            None => None,
            Some(text) => Some(text.parse().ok()?),
        };
        Some(Self {
            face_id: text(attr::FACE_ID)?.clone(),
            issued_at: DateTime::parse_from_rfc3339(text(attr::ISSUED_AT)?)
                .ok()?
                .with_timezone(&Utc),
            steps,
            liveness_session: text(attr::LIVENESS_SESSION).cloned(),
        })
    }
}

/// Why a challenge could not be claimed.
#[derive(Debug)]
pub enum ClaimError {
    Refused(AuthFailureReason),
    Failed(VerifierError),
}

/// Marks the challenge answered, once: succeeds only for a recorded, unanswered, unexpired
/// challenge of this user and key, and returns what was recorded for it. Called before the
/// selfie is even read, so two answers racing each other cannot both be checked.
pub async fn claim(
    verifier: &Verifier,
    challenge: &IssuedChallenge,
    now: DateTime<Utc>,
    deadline: &Deadline,
) -> Result<Claimed, ClaimError> {
    if now >= challenge.expires_at {
        return Err(ClaimError::Refused(AuthFailureReason::ChallengeExpired));
    }
    let call = verifier
        .dynamodb()
        .update_item()
        .table_name(verifier.table(Table::Challenges))
        .key(
            attr::CHALLENGE_ID,
            AttributeValue::S(challenge.upload.challenge_id.to_string()),
        )
        .update_expression("SET #answered = :now")
        .condition_expression(
            "attribute_exists(#id) AND attribute_not_exists(#answered) \
             AND #user = :user AND #key = :key AND #expires > :now_secs",
        )
        .expression_attribute_names("#id", attr::CHALLENGE_ID)
        .expression_attribute_names("#answered", attr::ANSWERED_AT)
        .expression_attribute_names("#user", attr::USER_ID)
        .expression_attribute_names("#key", attr::KEY)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(
            ":now",
            AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
        )
        .expression_attribute_values(
            ":user",
            AttributeValue::S(challenge.upload.user_id.to_string()),
        )
        .expression_attribute_values(":key", AttributeValue::S(challenge.key()))
        .expression_attribute_values(":now_secs", AttributeValue::N(now.timestamp().to_string()))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send();
    let result = deadline
        .run("UpdateItem challenges", call)
        .await
        .map_err(|e| ClaimError::Failed(e.into()))?;
    match result {
        // A record without its face (written before this field existed) is not answerable.
        Ok(updated) => updated
            .attributes()
            .and_then(Claimed::from_item)
            .ok_or(ClaimError::Refused(AuthFailureReason::ChallengeExpired)),
        Err(e) => match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                failed,
            )) => Err(ClaimError::Refused(refusal(failed.item(), challenge, now))),
            _ => Err(ClaimError::Failed(VerifierError::dependency(
                "UpdateItem challenges",
                e,
            ))),
        },
    }
}

/// Which part of the claim's condition failed, from the item as it was.
fn refusal(
    old: Option<&HashMap<String, AttributeValue>>,
    challenge: &IssuedChallenge,
    now: DateTime<Utc>,
) -> AuthFailureReason {
    let Some(old) = old else {
        // Never recorded, or already swept by the TTL: either way not answerable any more.
        return AuthFailureReason::ChallengeExpired;
    };
    let text = |name: &str| old.get(name).and_then(|v| v.as_s().ok()).cloned();
    if text(attr::USER_ID).as_deref() != Some(challenge.upload.user_id.as_str())
        || text(attr::KEY) != Some(challenge.key())
    {
        return AuthFailureReason::WrongAnswer;
    }
    if old.contains_key(attr::ANSWERED_AT) {
        return AuthFailureReason::ChallengeReused;
    }
    let expires = old
        .get(attr::EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok());
    if expires.is_none_or(|t| t <= now.timestamp()) {
        return AuthFailureReason::ChallengeExpired;
    }
    // The condition failed for a reason the old item does not show (a concurrent claim).
    AuthFailureReason::ChallengeReused
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn private_parameters_round_trip_and_refuse_tampering() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00.123Z".parse().unwrap();
        let ttl = Duration::from_secs(180);
        let issued = IssuedChallenge::new(UserId::parse("zoë").unwrap(), "f-1".into(), now, ttl);
        let params = issued.private_parameters();
        assert_eq!(
            IssuedChallenge::from_private_parameters(&params, ttl),
            Some(issued.clone())
        );
        let mut tampered = params.clone();
        tampered.insert("key".into(), "signin/zoë/other.jpg".into());
        assert_eq!(
            IssuedChallenge::from_private_parameters(&tampered, ttl),
            None
        );
        let mut partial = params;
        partial.remove("faceId");
        assert_eq!(
            IssuedChallenge::from_private_parameters(&partial, ttl),
            None
        );
    }

    #[test]
    fn a_failed_claim_names_its_reason() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let issued = IssuedChallenge::new(
            UserId::parse("zoë").unwrap(),
            "f-1".into(),
            now,
            Duration::from_secs(60),
        );
        let s = |v: &str| AttributeValue::S(v.into());
        let mut old = HashMap::from([
            (attr::USER_ID.to_string(), s("zoë")),
            (attr::KEY.to_string(), s(&issued.key())),
            (
                attr::EXPIRES_AT.to_string(),
                AttributeValue::N((now.timestamp() + 60).to_string()),
            ),
            (attr::ANSWERED_AT.to_string(), s("2026-11-21T12:00:00Z")),
        ]);
        assert_eq!(
            refusal(Some(&old), &issued, now),
            AuthFailureReason::ChallengeReused
        );
        old.remove(attr::ANSWERED_AT);
        old.insert(
            attr::EXPIRES_AT.into(),
            AttributeValue::N(now.timestamp().to_string()),
        );
        assert_eq!(
            refusal(Some(&old), &issued, now),
            AuthFailureReason::ChallengeExpired
        );
        old.insert(attr::USER_ID.into(), s("mallory"));
        assert_eq!(
            refusal(Some(&old), &issued, now),
            AuthFailureReason::WrongAnswer
        );
        assert_eq!(
            refusal(None, &issued, now),
            AuthFailureReason::ChallengeExpired
        );
    }
}
