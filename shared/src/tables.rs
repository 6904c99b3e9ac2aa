//! The DynamoDB tables: keys, secondary indexes and TTL, in one place.
//!
//! Provisioning creates the tables from [`spec`]; the code that reads and writes them uses the
//! attribute-name constants of each table's module, so a key is never spelled twice. Every
//! table is on-demand (pay per request). Times that DynamoDB's TTL reads are epoch seconds
//! (`N`); every other time is an RFC 3339 string.
//!
//! | table | partition key | sort key | index | TTL |
//! | --- | --- | --- | --- | --- |
//! | `registrations` | `user_id` S | `upload_id` S | `by-face`: `face_id` S | – |
//! | `users` | `user_id` S | – | – | – |
//! | `auth-failures` | `subject` S | `window_start` N | – | `expires_at` |
//! | `challenges` | `challenge_id` S | – | – | `expires_at` |
//! | `processed-messages` | `message_key` S | – | – | `expires_at` |
//! | `face-budget` | `window` S | – | – | `expires_at` |

use crate::config::Table;

/// One registration photo and its way through the pipeline (see
/// [`crate::registration::RegistrationRecord`]). One item per upload, so a redelivered event
/// finds its own item instead of creating a second one; all of a user's registrations share a
/// partition, so `GET /v1/registrations/<user>` is one query.
pub mod registrations {
    pub const USER_ID: &str = "user_id";
    pub const UPLOAD_ID: &str = "upload_id";
    /// The Rekognition face id, once indexed. Sparse key of [`BY_FACE`].
    pub const FACE_ID: &str = "face_id";
    /// Index from a face id back to its registration: dedup-search gets face ids from
    /// `SearchFaces` and needs to know whose they are.
    pub const BY_FACE: &str = "by-face";
    pub const STATE: &str = "state";
    pub const REASONS: &str = "reasons";
    pub const DETAIL: &str = "detail";
    pub const BUCKET: &str = "bucket";
    pub const KEY: &str = "key";
    pub const DUPLICATE_OF_USER: &str = "duplicate_of_user";
    pub const DUPLICATE_OF_FACE: &str = "duplicate_of_face";
    pub const DUPLICATE_SIMILARITY: &str = "duplicate_similarity";
    /// The upload that replaced a REPLACED registration.
    pub const REPLACED_BY: &str = "replaced_by";
    /// Set (BOOL true) once dedup-search published the duplicate's security alert, so a
    /// redelivered message does not publish it again.
    pub const ALERT_PUBLISHED: &str = "alert_published";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
}

/// One item per user: which registration signs in (the ACTIVE one, if any) and whether the
/// user is locked. The sign-in path reads exactly this item.
pub mod users {
    pub const USER_ID: &str = "user_id";
    /// The upload whose face signs in; changed together with the registration in one
    /// transaction, so a newer registration replaces the older one atomically.
    pub const ACTIVE_UPLOAD_ID: &str = "active_upload_id";
    pub const ACTIVE_FACE_ID: &str = "active_face_id";
    /// `created_at` of the active registration (RFC 3339, always 9 fraction digits and `Z`, so
    /// strings compare as times): a registration replaces the active one only if it is newer.
    pub const ACTIVE_CREATED_AT: &str = "active_created_at";
    /// Epoch seconds until which sign-in is refused (a lock expires by itself; not a TTL:
    /// the item must outlive the lock).
    pub const LOCKED_UNTIL: &str = "locked_until";
    pub const LOCK_REASON: &str = "lock_reason";
    pub const UPDATED_AT: &str = "updated_at";
    /// Liveness: the step sequence of the user's last challenge (the next one differs).
    pub const LAST_LIVENESS_STEPS: &str = "last_liveness_steps";
    /// Liveness: fingerprints of the user's latest frames (a list of binaries), so a frame
    /// sent again in a later challenge is refused.
    pub const RECENT_FRAMES: &str = "recent_frames";
}

/// Failure counters for sliding windows: one item per subject and fixed-size time bucket,
/// incremented atomically (`ADD failures :one`); a window is the sum of its recent buckets.
/// Old buckets expire by TTL.
///
/// The same table holds liveness timeouts: the item `timeout#device#<id>` or
/// `timeout#source#<address>` at window start 0, with the end of the timeout in
/// `timed_out_until` (written by the failure-alert worker, read by Verify).
pub mod auth_failures {
    /// `user#<user_id>`, `source#<address>`, `liveness-device#<id>`, `liveness-source#<address>`,
    /// or a timeout's `timeout#...`.
    pub const SUBJECT: &str = "subject";
    /// Start of the bucket, epoch seconds.
    pub const WINDOW_START: &str = "window_start";
    pub const FAILURES: &str = "failures";
    pub const EXPIRES_AT: &str = "expires_at";
    /// A timeout's end, epoch seconds.
    pub const TIMED_OUT_UNTIL: &str = "timed_out_until";
    /// The `window_start` of a timeout item (it has one item per origin, not per bucket).
    const TIMEOUT_WINDOW_START: i64 = 0;

    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    /// The key of `origin`'s timeout item: `timeout#<origin>` at window start 0.
    pub fn timeout_key(origin: &crate::events::Origin) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                SUBJECT.to_string(),
                AttributeValue::S(format!("timeout#{}", origin.key())),
            ),
            (
                WINDOW_START.to_string(),
                AttributeValue::N(TIMEOUT_WINDOW_START.to_string()),
            ),
        ])
    }

    /// The end of the timeout a timeout item holds, if it holds a readable one.
    pub fn timed_out_until(item: &HashMap<String, AttributeValue>) -> Option<i64> {
        item.get(TIMED_OUT_UNTIL)?.as_n().ok()?.parse().ok()
    }

    /// The failures counted in `buckets` (items of this table); an item without a readable
    /// count adds nothing.
    pub fn total(buckets: &[HashMap<String, AttributeValue>]) -> i64 {
        buckets
            .iter()
            .filter_map(|item| item.get(FAILURES)?.as_n().ok()?.parse::<i64>().ok())
            .sum()
    }
}

/// Issued sign-in challenges, so each is answered at most once and an old key is refused.
pub mod challenges {
    pub const CHALLENGE_ID: &str = "challenge_id";
    pub const USER_ID: &str = "user_id";
    pub const KEY: &str = "key";
    pub const ISSUED_AT: &str = "issued_at";
    /// The registered face the challenge's selfie must match: Verify reads it from this
    /// record, never from the event it is handed.
    pub const FACE_ID: &str = "face_id";
    /// Liveness: the steps asked (`centre,left,right`); absent for a single-selfie challenge.
    pub const LIVENESS_STEPS: &str = "liveness_steps";
    /// Face Liveness: the `CreateFaceLivenessSession` session this challenge is bound to.
    pub const LIVENESS_SESSION: &str = "liveness_session";
    /// Set (conditionally) when the challenge is answered.
    pub const ANSWERED_AT: &str = "answered_at";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Idempotency records: a handler that must act at most once per message (publish an alert,
/// count a failure) first writes `<consumer>#<message id>` here with a condition that it does
/// not exist yet.
pub mod processed_messages {
    pub const MESSAGE_KEY: &str = "message_key";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// The stack's face-call budget (`FACEGATE_FACE_BUDGET_PER_SECOND`): one item per second,
/// counting the calls every process of the stack made to the face service in it. A call is
/// made only after its increment succeeded under the condition that the count stays within
/// the budget (see [`crate::rate_limit`]).
pub mod face_budget {
    /// The epoch second, in decimal.
    pub const WINDOW: &str = "window";
    pub const CALLS: &str = "calls";
    /// Epoch seconds; a window's item is kept a minute.
    pub const EXPIRES_AT: &str = "expires_at";
}

/// The DynamoDB type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    String,
    Number,
}

/// A key attribute: its name and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: &'static str,
    pub kind: KeyType,
}

/// A global secondary index; it projects every attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
}

/// Everything provisioning needs to create a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub table: Table,
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
    pub indexes: &'static [IndexSpec],
    /// The attribute DynamoDB's TTL reads (epoch seconds), when items expire.
    pub ttl_attribute: Option<&'static str>,
}

const fn string(name: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        kind: KeyType::String,
    }
}

const fn number(name: &'static str) -> KeyAttribute {
    KeyAttribute {
        name,
        kind: KeyType::Number,
    }
}

const REGISTRATION_INDEXES: &[IndexSpec] = &[IndexSpec {
    name: registrations::BY_FACE,
    partition_key: string(registrations::FACE_ID),
    sort_key: None,
}];

/// The design of `table`.
pub fn spec(table: Table) -> TableSpec {
    let plain = |partition_key, ttl_attribute| TableSpec {
        table,
        partition_key,
        sort_key: None,
        indexes: &[],
        ttl_attribute,
    };
    match table {
        Table::Registrations => TableSpec {
            table,
            partition_key: string(registrations::USER_ID),
            sort_key: Some(string(registrations::UPLOAD_ID)),
            indexes: REGISTRATION_INDEXES,
            ttl_attribute: None,
        },
        Table::Users => plain(string(users::USER_ID), None),
        Table::AuthFailures => TableSpec {
            sort_key: Some(number(auth_failures::WINDOW_START)),
            ..plain(
                string(auth_failures::SUBJECT),
                Some(auth_failures::EXPIRES_AT),
            )
        },
        Table::Challenges => plain(
            string(challenges::CHALLENGE_ID),
            Some(challenges::EXPIRES_AT),
        ),
        Table::ProcessedMessages => plain(
            string(processed_messages::MESSAGE_KEY),
            Some(processed_messages::EXPIRES_AT),
        ),
        Table::FaceBudget => plain(string(face_budget::WINDOW), Some(face_budget::EXPIRES_AT)),
    }
}

/// Every table of the stack, in creation order.
pub fn all() -> Vec<TableSpec> {
    Table::ALL.into_iter().map(spec).collect()
}
