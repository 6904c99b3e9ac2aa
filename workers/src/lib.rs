//! `facegate-workers`: the queue workers of the registration pipeline, each a [`Handler`]
//! plugged into the worker runtime of `facegate-shared`.
//!
//! - [`indexer`]: `uploads` -> quality gate -> IndexFaces -> INDEXED -> `FaceIndexed`.
//! - [`dedup`]: `FaceIndexed` -> SearchFaces -> ACTIVE (replacing the user's older
//!   registration), or REJECTED/flagged as a duplicate with a `SecurityAlert`.
//! - [`store`]: every DynamoDB read and conditional write of the registration pipeline.
//! - [`faces`]: every Rekognition call, rate limited, with its errors sorted.
//! - [`role`]: what every worker role does around its handler (settings, ops endpoint,
//!   shutdown), written once.
//! - [`bench`]: `facegate bench pipeline`.
//!
//! Each role has an embedded entry point (`run_indexer`, `run_dedup`: for `facegate dev` and
//! tests) and a standalone one (`indexer_main`, `dedup_main`: for `facegate indexer|dedup`).
//! How each handler stays idempotent is in its module's documentation and in README.md.
//!
//! [`Handler`]: facegate_shared::worker::Handler

pub mod alerts;
pub mod dedup;
pub mod faces;
pub mod indexer;
pub mod role;
pub mod store;

pub use dedup::{DedupArgs, DedupSettings, DuplicatePolicy, dedup_main, run_dedup};
pub use indexer::{IndexerArgs, IndexerSettings, indexer_main, run_indexer};
pub use role::{RoleArgs, RoleError};
