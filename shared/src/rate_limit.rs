//! One limiter for every call a process makes to the face service.
//!
//! Rekognition allows only a few calls per second per account and operation by default, and
//! every handler of a process shares that budget: they all wait on this one token bucket rather
//! than each finding out through throttling errors. Calls that are throttled anyway are retried
//! by the SDK's standard retry mode with exponential backoff, and past that the handler's
//! transient error sends the message back to SQS with a longer backoff.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Jitter, Quota};

/// The face-service budget of one process.
#[derive(clap::Args, Clone, Debug)]
pub struct FaceServiceSettings {
    /// Calls per second this process makes to Rekognition (all operations together).
    #[arg(long, env = "FACEGATE_FACE_CALLS_PER_SECOND", default_value_t = NonZeroU32::new(5).expect("5 > 0"))]
    pub face_calls_per_second: NonZeroU32,
    /// Calls that may go out at once after a quiet spell.
    #[arg(long, env = "FACEGATE_FACE_CALLS_BURST", default_value_t = NonZeroU32::new(5).expect("5 > 0"))]
    pub face_calls_burst: NonZeroU32,
}

/// A shared token bucket. Clone the `Arc` it lives in, not the limiter.
pub struct FaceServiceLimiter {
    bucket: DefaultDirectRateLimiter,
}

impl FaceServiceLimiter {
    pub fn new(settings: &FaceServiceSettings) -> Self {
        let quota = Quota::per_second(settings.face_calls_per_second)
            .allow_burst(settings.face_calls_burst);
        Self {
            bucket: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// Waits for a token. Call it right before each face-service call.
    pub async fn acquire(&self) {
        self.bucket
            .until_ready_with_jitter(Jitter::up_to(std::time::Duration::from_millis(5)))
            .await;
    }
}

/// Whether an AWS error code means "slow down" rather than "wrong".
pub fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "LimitExceededException"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn burst_then_paced() {
        let limiter = FaceServiceLimiter::new(&FaceServiceSettings {
            face_calls_per_second: NonZeroU32::new(20).unwrap(),
            face_calls_burst: NonZeroU32::new(2).unwrap(),
        });
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // 2 at once, then 4 more at 20/s: at least ~200 ms; counts, not a timing benchmark.
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn throttling_codes() {
        assert!(is_throttling(Some("ThrottlingException")));
        assert!(!is_throttling(Some("InvalidParameterException")));
        assert!(!is_throttling(None));
    }
}
