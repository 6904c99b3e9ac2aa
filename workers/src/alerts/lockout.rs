//! Locking a user: `users.locked_until` (epoch seconds), which Define and `/v1/verify` read on
//! every sign-in. A lock expires by itself; it is never a TTL (the users item must outlive it).
//!
//! The lock's end is computed from the failure that crossed the threshold (its time plus
//! `lockout_secs`), so a redelivered message computes the same lock and recognises it as its
//! own: the update is then a no-op and the alert, deduplicated by its id, is not sent twice.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::ids::UserId;
use facegate_shared::stack::Stack;
use facegate_shared::tables::users;

use super::AlertError;

/// What became of a lock attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Locked now, until this time.
    Applied { until: i64 },
    /// This very lock was applied by an earlier delivery of the same message.
    AlreadyApplied { until: i64 },
    /// Locked already, by an earlier crossing that is still in force.
    AlreadyLocked,
    /// No users item: nobody to lock (the user is not registered).
    NoUser,
}

/// Locks `user` from `failure_time` for `lockout_secs`, unless a lock is in force.
pub async fn lock(
    stack: &Stack,
    user: &UserId,
    failure_time: DateTime<Utc>,
    lockout_secs: u64,
    reason: &str,
) -> Result<Lock, AlertError> {
    let now = failure_time.timestamp();
    let until = now + lockout_secs as i64;
    let n = |v: i64| AttributeValue::N(v.to_string());
    let result = stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table(Table::Users))
        .key(users::USER_ID, AttributeValue::S(user.to_string()))
        .update_expression("SET #until = :until, #reason = :reason, #updated = :updated")
        // Only a registered user, and only when no other lock is in force (the same lock
        // again is a redelivery and harmless).
        .condition_expression(
            "attribute_exists(#user) AND (attribute_not_exists(#until) OR #until <= :now OR #until = :until)",
        )
        .expression_attribute_names("#user", users::USER_ID)
        .expression_attribute_names("#until", users::LOCKED_UNTIL)
        .expression_attribute_names("#reason", users::LOCK_REASON)
        .expression_attribute_names("#updated", users::UPDATED_AT)
        .expression_attribute_values(":until", n(until))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":reason", AttributeValue::S(reason.into()))
        .expression_attribute_values(":updated", AttributeValue::S(Utc::now().to_rfc3339()))
        .return_values(ReturnValue::UpdatedOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(out) => {
            let before = out
                .attributes()
                .and_then(|a| a.get(users::LOCKED_UNTIL))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok());
            Ok(if before == Some(until) {
                Lock::AlreadyApplied { until }
            } else {
                Lock::Applied { until }
            })
        }
        Err(e) => match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                Ok(if failed.item().is_some() {
                    Lock::AlreadyLocked
                } else {
                    Lock::NoUser
                })
            }
            _ => Err(AlertError::dynamodb("UpdateItem users (lock)", e)),
        },
    }
}
