//! Failure counts in sliding windows, in the `auth-failures` table.
//!
//! Time is cut into fixed buckets (`bucket_secs`, one minute by default); each subject
//! (`user#<id>`, `source#<address>`, and for failed liveness checks `liveness-device#<id>` and
//! `liveness-source#<address>`) has one item per bucket holding a counter that is
//! incremented atomically (`ADD failures :one`). The count "in the window" is the sum of the
//! buckets that overlap the last `window_secs`, read with one query. Old buckets expire by TTL.
//!
//! Counting is exactly once per message: the marker in `processed-messages` (conditional on
//! not existing) and the increments are one transaction, so a redelivered message finds its
//! marker and adds nothing, and a crash cannot leave a counted-but-unmarked message behind.

use std::net::IpAddr;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::events::Origin;
use facegate_shared::ids::UserId;
use facegate_shared::stack::Stack;
use facegate_shared::tables::{auth_failures, processed_messages};

use super::{AlertError, AlertsSettings};

/// What a failure is counted against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    User(UserId),
    Source(IpAddr),
    /// Failed liveness checks only, per device or source.
    LivenessChecks(Origin),
}

impl Subject {
    /// The partition key: `user#<id>` or `source#<address>`.
    pub fn key(&self) -> String {
        match self {
            Subject::User(user) => format!("user#{user}"),
            Subject::Source(ip) => format!("source#{ip}"),
            Subject::LivenessChecks(origin) => format!("liveness-{}", origin.key()),
        }
    }
}

/// The bucket geometry.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub window_secs: i64,
    pub bucket_secs: i64,
}

impl Windows {
    /// The window of the per-user and per-source failure counts.
    pub fn new(settings: &AlertsSettings) -> Self {
        Self::of(settings.window_secs, settings.bucket_secs)
    }

    /// The (shorter) window of failed liveness checks per device and source.
    pub fn liveness(settings: &AlertsSettings) -> Self {
        Self::of(settings.liveness_window_secs, settings.bucket_secs)
    }

    fn of(window_secs: u64, bucket_secs: u64) -> Self {
        let bucket_secs = bucket_secs.max(1) as i64;
        Self {
            // A window is whole buckets.
            window_secs: (window_secs as i64).max(bucket_secs),
            bucket_secs,
        }
    }

    /// Start of the bucket holding `time`.
    pub fn bucket_start(&self, time: DateTime<Utc>) -> i64 {
        time.timestamp().div_euclid(self.bucket_secs) * self.bucket_secs
    }

    /// The first and last bucket starts of the window ending in `time`'s bucket.
    pub fn range(&self, time: DateTime<Utc>) -> (i64, i64) {
        let last = self.bucket_start(time);
        (last - self.window_secs + self.bucket_secs, last)
    }

    /// When a bucket stops mattering: once no window can include it (plus a day for looking).
    fn expires_at(&self, bucket_start: i64) -> i64 {
        bucket_start + self.window_secs + self.bucket_secs + 86_400
    }
}

/// Counts one failure against every subject, once per `event_key` (the failure's own id). Every bucket is
/// `windows`' size (the liveness windows share it), and kept as long as the longest window
/// needs. Returns whether it was
/// counted now (`false`: an earlier delivery already did).
pub async fn count_once(
    stack: &Stack,
    windows: &Windows,
    event_key: &str,
    subjects: &[Subject],
    time: DateTime<Utc>,
) -> Result<bool, AlertError> {
    let s = |v: String| AttributeValue::S(v);
    let n = |v: i64| AttributeValue::N(v.to_string());
    let bucket = windows.bucket_start(time);
    let marker = Put::builder()
        .table_name(stack.table(Table::ProcessedMessages))
        .item(processed_messages::MESSAGE_KEY, s(event_key.into()))
        .item(
            processed_messages::EXPIRES_AT,
            n(Utc::now().timestamp() + 4 * 86_400),
        )
        .condition_expression("attribute_not_exists(#k)")
        .expression_attribute_names("#k", processed_messages::MESSAGE_KEY)
        .build()?;
    let mut items = vec![TransactWriteItem::builder().put(marker).build()];
    for subject in subjects {
        let update = Update::builder()
            .table_name(stack.table(Table::AuthFailures))
            .key(auth_failures::SUBJECT, s(subject.key()))
            .key(auth_failures::WINDOW_START, n(bucket))
            .update_expression("ADD #f :one SET #exp = :exp")
            .expression_attribute_names("#f", auth_failures::FAILURES)
            .expression_attribute_names("#exp", auth_failures::EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(windows.expires_at(bucket)))
            .build()?;
        items.push(TransactWriteItem::builder().update(update).build());
    }
    let result = stack
        .clients
        .dynamodb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) => {
            let duplicate = e.as_service_error().is_some_and(|se| match se {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    c.cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        == Some("ConditionalCheckFailed")
                }
                _ => false,
            });
            if duplicate {
                Ok(false)
            } else {
                Err(AlertError::dynamodb("TransactWriteItems", e))
            }
        }
    }
}

/// Failures of `subject` in the window ending at `time`.
pub async fn failures_in_window(
    stack: &Stack,
    windows: &Windows,
    subject: &Subject,
    time: DateTime<Utc>,
) -> Result<i64, AlertError> {
    let (first, last) = windows.range(time);
    let n = |v: i64| AttributeValue::N(v.to_string());
    let items = stack
        .clients
        .dynamodb
        .query()
        .table_name(stack.table(Table::AuthFailures))
        .key_condition_expression("#s = :s AND #w BETWEEN :first AND :last")
        .expression_attribute_names("#s", auth_failures::SUBJECT)
        .expression_attribute_names("#w", auth_failures::WINDOW_START)
        .expression_attribute_values(":s", AttributeValue::S(subject.key()))
        .expression_attribute_values(":first", n(first))
        .expression_attribute_values(":last", n(last))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AlertError::dynamodb("Query auth-failures", e))?
        .items
        .unwrap_or_default();
    Ok(auth_failures::total(&items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_windows() {
        let w = Windows {
            window_secs: 300,
            bucket_secs: 60,
        };
        let t: DateTime<Utc> = DateTime::from_timestamp(1_000_030, 0).unwrap();
        assert_eq!(w.bucket_start(t), 1_000_020);
        // Five one-minute buckets, the last one holding `t`.
        assert_eq!(w.range(t), (999_780, 1_000_020));
        assert_eq!(
            Subject::Source("203.0.113.7".parse().unwrap()).key(),
            "source#203.0.113.7"
        );
        assert_eq!(
            Subject::User(UserId::parse("zoë").unwrap()).key(),
            "user#zoë"
        );
        let device = facegate_shared::ids::DeviceId::parse("phone-1").unwrap();
        assert_eq!(
            Subject::LivenessChecks(Origin::Device(device)).key(),
            "liveness-device#phone-1"
        );
        // The liveness window: three one-minute buckets by default.
        let liveness = Windows::liveness(&AlertsSettings::default());
        assert_eq!(liveness.range(t), (1_000_020 - 120, 1_000_020));
    }
}
