//! The wire types of every message facegate sends or receives on its queues and topics.
//!
//! - [`s3`]: S3 event notifications on the `uploads` queue (and S3's `s3:TestEvent`).
//! - [`sns`]: the SNS envelope around everything that comes from a topic, and publishing.
//! - [`pipeline`]: `FaceIndexed`, on the `pipeline` topic.
//! - [`auth`]: `AuthEvent`, on the `auth-events` topic.
//! - [`alert`]: `SecurityAlert`, on the `security-alerts` topic.

pub mod alert;
pub mod auth;
pub mod pipeline;
pub mod s3;
pub mod sns;

pub use alert::{AlertKind, AlertSubject, SecurityAlert, Severity};
pub use auth::{AuthChannel, AuthEvent, AuthFailureReason, AuthOutcome, Origin};
pub use pipeline::FaceIndexed;
pub use s3::{ObjectEvent, S3Notification, S3TestEvent};
pub use sns::{Notification, Publishable, publish};
