//! `facegate-shared`: what every facegate role stands on.
//!
//! - [`aws`]: where each AWS service is reached, and the clients.
//! - [`config`]: the stack's resource names ([`config::StackNames`]) and shared settings.
//! - [`tables`]: the DynamoDB tables' keys, indexes and TTL.
//! - [`ids`], [`objects`]: user, upload and challenge ids; the S3 keys they make.
//! - [`events`]: the wire types on the queues and topics (S3 events, SNS envelopes,
//!   `FaceIndexed`, `AuthEvent`, `SecurityAlert`).
//! - [`registration`]: the registration record, its states and its DynamoDB item.
//! - [`quality`]: the named reasons a photo fails the quality gate.
//! - [`provision`]: `facegate provision`.
//! - [`telemetry`]: logs and spans.

pub mod aws;
pub mod config;
pub mod events;
pub mod ids;
pub mod objects;
pub mod provision;
pub mod quality;
pub mod registration;
pub mod tables;
pub mod telemetry;
