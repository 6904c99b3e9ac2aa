//! A request's time budget. Cognito gives a trigger 5 seconds in all, so every call the
//! verifier makes for one request shares one deadline: a slow S3 read leaves less time for the
//! face service, and a call that would run past the deadline is cut short.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The moment a request must have its answer.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
}

/// A call was still running when the deadline passed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("deadline passed during {0}")]
pub struct DeadlineExceeded(pub &'static str);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Runs `call` (named `what` in the error) for at most the time left.
    pub async fn run<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = T>,
    ) -> Result<T, DeadlineExceeded> {
        tokio::time::timeout_at(self.at, call)
            .await
            .map_err(|_| DeadlineExceeded(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_call_is_cut_short() {
        let deadline = Deadline::after(Duration::from_millis(20));
        let slow = tokio::time::sleep(Duration::from_secs(5));
        assert!(deadline.run("sleep", slow).await.is_err());
        assert_eq!(deadline.remaining(), Duration::ZERO);
        let fresh = Deadline::after(Duration::from_secs(5));
        assert_eq!(fresh.run("ready", async { 7 }).await.unwrap(), 7);
    }
}
