//! Amazon Cognito's three custom-authentication triggers, with their exact Lambda event
//! contract: the event comes in, the same event goes back with `response` filled out. The same
//! functions serve `POST /cognito/*` and `facegate verifier --lambda`.
//!
//! - [`define`]: which challenge comes next, or tokens, or failure.
//! - [`create`]: a one-time challenge: a presigned upload URL for the selfie.
//! - [`verify`]: the selfie against the registered face.
//! - [`sign_up`]: PreSignUp, the user name must be a facegate user id.

pub mod create;
pub mod define;
pub mod sign_up;
pub mod verify;

use std::time::Duration;

pub use create::create;
pub use define::define;
pub use sign_up::sign_up;
pub use verify::verify;

/// The only challenge facegate presents.
pub const CUSTOM_CHALLENGE: &str = "CUSTOM_CHALLENGE";
/// Cognito's own password steps of `CUSTOM_WITH_SRP`, which Define sees in the session.
pub const SRP_A: &str = "SRP_A";
pub const PASSWORD_VERIFIER: &str = "PASSWORD_VERIFIER";

/// Where the time of one Verify went, reported in a `Server-Timing` header (the benchmark
/// reads it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Reading (and deleting) the selfie.
    pub s3: Duration,
    /// The quality gate and the match, limiter waits included.
    pub face: Duration,
    /// DynamoDB (the challenge claim) and SNS (the auth event).
    pub store: Duration,
}

impl Timings {
    /// `s3;dur=12.1, face;dur=180.4, store;dur=9.8` (milliseconds).
    pub fn server_timing(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "s3;dur={:.1}, face;dur={:.1}, store;dur={:.1}",
            ms(self.s3),
            ms(self.face),
            ms(self.store)
        )
    }
}
