//! Timing out a device or a source address after failed liveness checks: the `auth-failures`
//! item `timeout#<origin>` (window start 0) holding `timed_out_until`, which Verify reads
//! before any face work. It expires by itself; its TTL only clears it away a day later.
//!
//! As with a lock ([`super::lockout`]), the end is computed from the failure that crossed the
//! threshold, so a redelivered message computes the same timeout and recognises it as its own.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::events::Origin;
use facegate_shared::stack::Stack;
use facegate_shared::tables::auth_failures;

use super::AlertError;

/// What became of a timeout attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Timed out now, or by an earlier delivery of the same message: until this time.
    Applied { until: i64 },
    /// Timed out already, by an earlier crossing that is still in force.
    AlreadyTimedOut,
}

/// Times `origin` out from `failure_time` for `timeout_secs`, unless a timeout is in force.
pub async fn time_out(
    stack: &Stack,
    origin: &Origin,
    failure_time: DateTime<Utc>,
    timeout_secs: u64,
) -> Result<Timeout, AlertError> {
    let now = failure_time.timestamp();
    let until = now + timeout_secs as i64;
    let n = |v: i64| AttributeValue::N(v.to_string());
    let result = stack
        .clients
        .dynamodb
        .update_item()
        .table_name(stack.table(Table::AuthFailures))
        .set_key(Some(auth_failures::timeout_key(origin)))
        .update_expression("SET #until = :until, #exp = :exp")
        // The same timeout again is a redelivery and harmless; another one in force stays.
        .condition_expression("attribute_not_exists(#until) OR #until <= :now OR #until = :until")
        .expression_attribute_names("#until", auth_failures::TIMED_OUT_UNTIL)
        .expression_attribute_names("#exp", auth_failures::EXPIRES_AT)
        .expression_attribute_values(":until", n(until))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":exp", n(until + 86_400))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Timeout::Applied { until }),
        Err(e) => match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)) => {
                Ok(Timeout::AlreadyTimedOut)
            }
            _ => Err(AlertError::dynamodb("UpdateItem auth-failures (timeout)", e)),
        },
    }
}
