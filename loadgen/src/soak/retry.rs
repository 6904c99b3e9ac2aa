//! How the soak's clients retry: as a real app does, a call that failed is made again after a
//! growing pause (250 ms up to 4 s), for as long as a person would keep trying; a call that
//! succeeded is never repeated.

use std::future::Future;
use std::time::{Duration, Instant};

use super::SoakError;

/// How long the soak waits for things.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// How long one call (or one sign-in, started again from the beginning) is retried: longer
    /// than any planned outage (an engine loading its models, the emulator restarting).
    pub call: Duration,
    /// How long the registrations may take to be final and the queues to drain.
    pub settle: Duration,
}

const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);

/// The pause before try number `tries + 1`.
pub fn pause(tries: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(tries.min(8)))
        .min(LONGEST_PAUSE)
}

/// Runs `call` until it succeeds; the number of times it was made again. Fails with the last
/// error once `patience.call` has passed.
pub async fn retrying<F, Fut>(
    what: &'static str,
    patience: Patience,
    mut call: F,
) -> Result<u32, SoakError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut tries = 0;
    loop {
        match call().await {
            Ok(()) => return Ok(tries),
            Err(e) if started.elapsed() < patience.call => {
                tracing::debug!(what, error = %e, tries, "failed; trying again");
                tokio::time::sleep(pause(tries)).await;
                tries += 1;
            }
            Err(e) => {
                return Err(SoakError::Run(format!(
                    "{what} still failing after {tries} retries over {:?}: {e}",
                    started.elapsed()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_a_ceiling() {
        assert_eq!(pause(0), Duration::from_millis(250));
        assert_eq!(pause(1), Duration::from_millis(500));
        assert_eq!(pause(4), Duration::from_secs(4));
        assert_eq!(pause(40), Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_call_is_made_again_until_it_succeeds_or_patience_runs_out() {
        let patience = Patience {
            call: Duration::from_millis(1500),
            settle: Duration::ZERO,
        };
        let mut failures = 3;
        let retries = retrying("test", patience, || {
            let fail = failures > 0;
            failures -= 1;
            async move { if fail { Err("down".into()) } else { Ok(()) } }
        })
        .await
        .unwrap();
        assert_eq!(retries, 3);
        let error = retrying("test", patience, || async { Err("down".into()) })
            .await
            .unwrap_err();
        assert!(error.to_string().contains("still failing"), "{error}");
    }
}
