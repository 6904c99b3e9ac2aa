//! `facegate-shared`: what every facegate role stands on.
//!
//! - [`aws`]: where each AWS service is reached, and the clients.
//! - [`config`]: the stack's resource names ([`config::StackNames`]) and shared settings.
//! - [`tables`]: the DynamoDB tables' keys, indexes and TTL.
//! - [`ids`], [`objects`]: user, upload and challenge ids; the S3 keys they make.
//! - [`events`]: the wire types on the queues and topics (S3 events, SNS envelopes,
//!   `FaceIndexed`, `AuthEvent`, `SecurityAlert`).
//! - [`registration`]: the registration record, its states and its DynamoDB item.
//! - [`liveness`]: active liveness's head-pose steps, thresholds and frame fingerprints.
//! - [`quality`]: the named reasons a photo fails the quality gate.
//! - [`provision`]: `facegate provision`.
//! - [`telemetry`]: logs and spans.
//! - [`user_pool`]: the stack's Cognito user pool and app client, found by name.
//! - [`stack`]: a role's clients and resolved queue URLs and topic ARNs.
//! - [`worker`]: the SQS worker runtime every queue worker runs on.
//! - [`rate_limit`]: the one budget for calls to the face service.
//! - [`ops`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`shutdown`]: SIGTERM/SIGINT as a cancellation token.
//! - [`report`]: errors with their causes, on one log line.
//! - [`measure`]: percentiles and process memory, for the benchmarks.

pub mod aws;
pub mod config;
pub mod events;
pub mod ids;
pub mod liveness;
pub mod measure;
pub mod objects;
pub mod ops;
pub mod probe;
pub mod provision;
pub mod quality;
pub mod rate_limit;
pub mod registration;
pub mod report;
pub mod shutdown;
pub mod stack;
pub mod tables;
pub mod telemetry;
pub mod user_pool;
pub mod worker;
