//! The liveness policy: what the sign-in asks of the camera. The steps, thresholds and
//! fingerprints are [`facegate_shared::liveness`] (the engine's Face Liveness stand-in uses
//! them too); the calls to S3 and the face service are in [`crate::triggers::verify`] and
//! [`crate::face`].

pub use facegate_shared::liveness::*;

/// What the sign-in asks of the camera.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivenessPolicy {
    /// One selfie, matched against the registered face: a photo of the user signs in.
    Off,
    /// A random sequence of head poses, one frame each, checked on the server.
    Active,
    /// Rekognition Face Liveness: Create opens a `CreateFaceLivenessSession`, the client runs
    /// AWS's FaceLivenessDetector on it, Verify reads `GetFaceLivenessSessionResults` and
    /// matches the session's reference image (locally: the engine's stand-in, which decides a
    /// session from frames uploaded to it with the `active` checks).
    AwsFaceLiveness,
}
