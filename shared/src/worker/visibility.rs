//! Message visibility: the heartbeat that keeps a message hidden while its handler runs, and
//! the backoff that decides when a failed message is seen again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// SQS's ceiling for a visibility timeout (12 hours).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// How long a message stays hidden after its `receive_count`-th failed attempt: exponential
/// from `base`, capped at `max`, with up to 20% jitter so a burst of failures does not come back
/// as a burst.
pub fn retry_delay(receive_count: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    let raw = base
        .saturating_mul(1u32 << exponent)
        .min(max)
        .min(MAX_VISIBILITY);
    raw.mul_f64(1.0 + 0.2 * jitter.clamp(0.0, 1.0))
        .min(MAX_VISIBILITY)
}

/// Extends a message's visibility every third of `timeout` until `stop` is cancelled, so a
/// handler that runs long is never handed to a second consumer meanwhile.
pub(crate) async fn heartbeat(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receipt_handle: String,
    timeout: Duration,
    stop: CancellationToken,
) {
    let period = (timeout / 3).max(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let extend = sqs
            .change_message_visibility()
            .queue_url(&queue_url)
            .receipt_handle(&receipt_handle)
            .visibility_timeout(secs(timeout))
            .send();
        tokio::select! {
            _ = stop.cancelled() => return,
            result = extend => if let Err(e) = result {
                // The next beat tries again; if the message did become visible, at-least-once
                // delivery and idempotent handlers make a second delivery harmless.
                tracing::warn!(error = %crate::report::chain(&e), "visibility heartbeat failed");
            }
        }
    }
}

/// Whole seconds for SQS, rounded up, within its limits.
pub(crate) fn secs(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(MAX_VISIBILITY.as_secs()) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn delay_doubles_per_attempt_then_caps() {
        assert_eq!(retry_delay(1, BASE, MAX, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(2, BASE, MAX, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(5, BASE, MAX, 0.0), Duration::from_secs(32));
        assert_eq!(retry_delay(9, BASE, MAX, 0.0), MAX);
        assert_eq!(retry_delay(1_000, BASE, MAX, 0.0), MAX);
    }

    #[test]
    fn jitter_adds_at_most_a_fifth() {
        assert_eq!(retry_delay(1, BASE, MAX, 1.0), Duration::from_millis(2_400));
        assert_eq!(retry_delay(1, BASE, MAX, 7.0), Duration::from_millis(2_400));
    }

    #[test]
    fn never_exceeds_what_sqs_accepts() {
        let huge = Duration::from_secs(100_000);
        assert_eq!(retry_delay(30, huge, huge, 1.0), MAX_VISIBILITY);
        assert_eq!(secs(Duration::from_millis(1_001)), 2);
        assert_eq!(secs(Duration::ZERO), 0);
    }
}
