//! Whether a user may sign in, read from the one `users` item the sign-in path looks at:
//! the face of the ACTIVE registration (`active_face_id`, set by dedup-search when the
//! registration became ACTIVE) and a lock (`locked_until`, set by the failure-alert worker).

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::events::AuthFailureReason;
use facegate_shared::ids::UserId;
use facegate_shared::tables::users;

use crate::deadline::Deadline;
use crate::error::VerifierError;
use crate::liveness::{Fingerprint, Sequence};
use crate::service::Verifier;

/// What the users item says about signing in now.
#[derive(Clone, Debug, PartialEq)]
pub enum SignInStatus {
    /// ACTIVE and not locked: match selfies against this face.
    Allowed { face_id: String },
    /// Refused, with the reason Define and `/v1/verify` report.
    Refused(AuthFailureReason),
}

/// Reads the users item (strongly consistent: a lock just set must be seen).
pub async fn status(
    verifier: &Verifier,
    user: &UserId,
    now: DateTime<Utc>,
    deadline: &Deadline,
) -> Result<SignInStatus, VerifierError> {
    let call = verifier
        .dynamodb()
        .get_item()
        .table_name(verifier.table(Table::Users))
        .key(users::USER_ID, AttributeValue::S(user.as_str().into()))
        .consistent_read(true)
        .send();
    let item = deadline
        .run("GetItem users", call)
        .await?
        .map_err(|e| VerifierError::dependency("GetItem users", e))?
        .item;
    Ok(match item {
        None => SignInStatus::Refused(AuthFailureReason::NotRegistered),
        Some(item) => decide(&item, now),
    })
}

/// What the users item remembers of the user's past liveness challenges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LivenessMemory {
    /// The steps of the last challenge issued: the next one asks for others.
    pub last_steps: Option<Sequence>,
    /// Fingerprints of the latest frames checked, newest first.
    pub recent_frames: Vec<Fingerprint>,
}

/// Reads the liveness memory (eventually consistent is enough: a replay within the same
/// second of the last challenge's answer would still meet that challenge's own record).
pub async fn liveness_memory(
    verifier: &Verifier,
    user: &UserId,
    deadline: &Deadline,
) -> Result<LivenessMemory, VerifierError> {
    let call = verifier
        .dynamodb()
        .get_item()
        .table_name(verifier.table(Table::Users))
        .key(users::USER_ID, AttributeValue::S(user.as_str().into()))
        .projection_expression("#steps, #frames")
        .expression_attribute_names("#steps", users::LAST_LIVENESS_STEPS)
        .expression_attribute_names("#frames", users::RECENT_FRAMES)
        .send();
    let item = deadline
        .run("GetItem users", call)
        .await?
        .map_err(|e| VerifierError::dependency("GetItem users", e))?
        .item
        .unwrap_or_default();
    Ok(LivenessMemory {
        last_steps: item
            .get(users::LAST_LIVENESS_STEPS)
            .and_then(|v| v.as_s().ok())
            .and_then(|text| text.parse().ok()),
        recent_frames: item
            .get(users::RECENT_FRAMES)
            .and_then(|v| v.as_l().ok())
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_b().ok())
                    .filter_map(|b| Fingerprint::from_bytes(b.as_ref()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Writes what a liveness challenge leaves behind: the steps just issued (Create) or the
/// frames just checked (Verify). Only onto an existing item: an erased user stays erased.
pub async fn remember_liveness(
    verifier: &Verifier,
    user: &UserId,
    steps: Option<&Sequence>,
    frames: Option<&[Fingerprint]>,
    deadline: &Deadline,
) -> Result<(), VerifierError> {
    let mut sets = Vec::new();
    let mut call = verifier
        .dynamodb()
        .update_item()
        .table_name(verifier.table(Table::Users))
        .key(users::USER_ID, AttributeValue::S(user.as_str().into()))
        .condition_expression("attribute_exists(#user)")
        .expression_attribute_names("#user", users::USER_ID);
    if let Some(steps) = steps {
        sets.push("#steps = :steps");
        call = call
            .expression_attribute_names("#steps", users::LAST_LIVENESS_STEPS)
            .expression_attribute_values(":steps", AttributeValue::S(steps.to_string()));
    }
    if let Some(frames) = frames {
        sets.push("#frames = :frames");
        let list = frames
            .iter()
            .map(|f| AttributeValue::B(Blob::new(f.as_bytes().to_vec())))
            .collect();
        call = call
            .expression_attribute_names("#frames", users::RECENT_FRAMES)
            .expression_attribute_values(":frames", AttributeValue::L(list));
    }
    if sets.is_empty() {
        return Ok(());
    }
    let call = call
        .update_expression(format!("SET {}", sets.join(", ")))
        .send();
    match deadline.run("UpdateItem users", call).await? {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(VerifierError::dependency("UpdateItem users", e)),
    }
}

/// The decision on an existing users item.
fn decide(
    item: &std::collections::HashMap<String, AttributeValue>,
    now: DateTime<Utc>,
) -> SignInStatus {
    let locked_until = item
        .get(users::LOCKED_UNTIL)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok());
    if locked_until.is_some_and(|until| until > now.timestamp()) {
        return SignInStatus::Refused(AuthFailureReason::Locked);
    }
    match item.get(users::ACTIVE_FACE_ID).and_then(|v| v.as_s().ok()) {
        Some(face_id) if !face_id.is_empty() => SignInStatus::Allowed {
            face_id: face_id.clone(),
        },
        // Registered (the pipeline wrote the item) but no registration is ACTIVE.
        _ => SignInStatus::Refused(AuthFailureReason::NotActive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn active_unlocked_locked_and_expired_locks() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let face = (users::ACTIVE_FACE_ID, AttributeValue::S("f-1".into()));
        assert_eq!(
            decide(&item(std::slice::from_ref(&face)), now),
            SignInStatus::Allowed {
                face_id: "f-1".into()
            }
        );
        let until = |t: i64| (users::LOCKED_UNTIL, AttributeValue::N(t.to_string()));
        assert_eq!(
            decide(&item(&[face.clone(), until(now.timestamp() + 60)]), now),
            SignInStatus::Refused(AuthFailureReason::Locked)
        );
        assert!(matches!(
            decide(&item(&[face, until(now.timestamp() - 1)]), now),
            SignInStatus::Allowed { .. }
        ));
        assert_eq!(
            decide(&item(&[]), now),
            SignInStatus::Refused(AuthFailureReason::NotActive)
        );
    }
}
