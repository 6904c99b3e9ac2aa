//! The engine's own count of API calls per second, as they arrive (before they queue for a
//! request slot): what a rate limit in front of Rekognition would see. Kept for the last hour,
//! read in process through [`crate::RunningEngine::calls_per_second`] (the fleet face-call
//! budget is tested against it).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Seconds of counts kept.
const KEPT_SECONDS: usize = 3600;

/// Calls per epoch second, oldest first.
#[derive(Default)]
pub struct CallCounts {
    seconds: Mutex<VecDeque<(u64, u32)>>,
}

impl CallCounts {
    /// One call arriving at `epoch_second`.
    pub fn record(&self, epoch_second: u64) {
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        match seconds.back_mut() {
            Some((second, count)) if *second == epoch_second => *count += 1,
            // A clock stepping back starts a new entry: counts stay per entry, never merged.
            _ => {
                seconds.push_back((epoch_second, 1));
                if seconds.len() > KEPT_SECONDS {
                    seconds.pop_front();
                }
            }
        }
    }

    /// `(epoch second, calls)` for every second that had a call, oldest first.
    pub fn snapshot(&self) -> Vec<(u64, u32)> {
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        seconds.iter().copied().collect()
    }
}

/// Middleware counting each request as it arrives.
pub async fn count(
    State(counts): State<Arc<CallCounts>>,
    request: Request,
    next: Next,
) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    counts.record(now);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_second() {
        let counts = CallCounts::default();
        for second in [10, 10, 11, 13, 13, 13] {
            counts.record(second);
        }
        assert_eq!(counts.snapshot(), vec![(10, 2), (11, 1), (13, 3)]);
    }
}
