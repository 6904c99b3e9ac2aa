//! One limiter for every call a process makes to the face service, and one budget for the
//! whole stack.
//!
//! Rekognition allows only a few calls per second per account and operation, and every
//! process of a stack spends that one quota. Two limits, both taken before each call:
//! - the process's own token bucket (`FACEGATE_FACE_CALLS_PER_SECOND`, burst
//!   `FACEGATE_FACE_CALLS_BURST`): every handler of a process waits on it rather than each
//!   finding out through throttling errors;
//! - where `FACEGATE_FACE_BUDGET_PER_SECOND` is set, the stack's budget: a counter per second
//!   in the `face-budget` table, shared by every process of every role. A call goes out only
//!   once its increment succeeded under the condition that the second's count stays within
//!   the budget; a process that finds the second spent waits for the next. Ten replicas of a
//!   worker then spend the budget together instead of ten times over. When the table cannot
//!   be reached, each process falls back to a small share of its own
//!   (`FACEGATE_FACE_BUDGET_FALLBACK_PER_SECOND`) and tries the table again a few seconds
//!   later.
//!
//! Windows are seconds of each host's clock, so the budget holds as well as the fleet's
//! clocks agree (NTP keeps AWS hosts within milliseconds). One conditional write per call costs
//! far less than the face call it guards. Calls that are throttled anyway are retried by the
//! SDK's standard retry mode with exponential backoff, and past that the handler's transient
//! error sends the message back to SQS with a longer backoff.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Jitter, Quota};

use crate::config::Table;
use crate::stack::Stack;
use crate::tables::face_budget;

/// The face-service limits of one process, and the stack's budget.
#[derive(clap::Args, Clone, Debug)]
pub struct FaceServiceSettings {
    /// Calls per second this process makes to Rekognition (all operations together).
    #[arg(long, env = "FACEGATE_FACE_CALLS_PER_SECOND", default_value_t = NonZeroU32::new(5).expect("5 > 0"))]
    pub face_calls_per_second: NonZeroU32,
    /// Calls that may go out at once after a quiet spell.
    #[arg(long, env = "FACEGATE_FACE_CALLS_BURST", default_value_t = NonZeroU32::new(5).expect("5 > 0"))]
    pub face_calls_burst: NonZeroU32,
    /// Calls per second for the whole stack, shared by every process through the
    /// `face-budget` table. Unset: each process keeps only its own limit.
    #[arg(long, env = "FACEGATE_FACE_BUDGET_PER_SECOND")]
    pub face_budget_per_second: Option<NonZeroU32>,
    /// This process's calls per second while the budget table cannot be reached.
    #[arg(long, env = "FACEGATE_FACE_BUDGET_FALLBACK_PER_SECOND", default_value_t = NonZeroU32::new(1).expect("1 > 0"))]
    pub face_budget_fallback_per_second: NonZeroU32,
}

impl FaceServiceSettings {
    /// A process limit alone, no stack budget (tools and tests).
    pub fn per_process(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            face_calls_per_second: per_second,
            face_calls_burst: burst,
            face_budget_per_second: None,
            face_budget_fallback_per_second: NonZeroU32::MIN,
        }
    }
}

/// The limits every face call of a process waits on. Clone the `Arc` it lives in, not the
/// limiter.
pub struct FaceServiceLimiter {
    bucket: DefaultDirectRateLimiter,
    budget: Option<StackBudget>,
}

impl FaceServiceLimiter {
    /// The process's own limit only, whatever the settings say of a stack budget.
    pub fn new(settings: &FaceServiceSettings) -> Self {
        let quota = Quota::per_second(settings.face_calls_per_second)
            .allow_burst(settings.face_calls_burst);
        Self {
            bucket: DefaultDirectRateLimiter::direct(quota),
            budget: None,
        }
    }

    /// The process's own limit, and the stack's budget when the settings set one.
    pub fn for_stack(settings: &FaceServiceSettings, stack: &Stack) -> Self {
        let budget = settings.face_budget_per_second.map(|per_second| {
            let table = stack.names.table(Table::FaceBudget);
            tracing::info!(per_second, %table, "face calls share the stack's budget");
            StackBudget::new(
                stack.clients.dynamodb.clone(),
                table,
                per_second,
                settings.face_budget_fallback_per_second,
            )
        });
        Self {
            budget,
            ..Self::new(settings)
        }
    }

    /// Waits until a call may go out. Call it right before each face-service call.
    pub async fn acquire(&self) {
        self.bucket
            .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(5)))
            .await;
        if let Some(budget) = &self.budget {
            budget.acquire().await;
        }
    }
}

/// How long a process keeps to its fallback share after the budget table failed it.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(5);

/// The stack's per-second counter in DynamoDB.
struct StackBudget {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    per_second: u32,
    /// The last window this process found spent: no write is tried in it again.
    spent: AtomicU64,
    fallback: DefaultDirectRateLimiter,
    /// Set while the table cannot be reached.
    unreachable_until: Mutex<Option<Instant>>,
}

/// What one conditional increment found.
enum Take {
    Taken,
    Spent,
}

impl StackBudget {
    fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: String,
        per_second: NonZeroU32,
        fallback_per_second: NonZeroU32,
    ) -> Self {
        Self {
            dynamodb,
            table,
            per_second: per_second.get(),
            spent: AtomicU64::new(0),
            fallback: DefaultDirectRateLimiter::direct(Quota::per_second(fallback_per_second)),
            unreachable_until: Mutex::new(None),
        }
    }

    async fn acquire(&self) {
        loop {
            if self.unreachable() {
                self.fallback.until_ready().await;
                return;
            }
            let now = epoch_seconds();
            let window = now.trunc() as u64;
            if self.spent.load(Ordering::Relaxed) != window {
                match self.take(window).await {
                    Ok(Take::Taken) => return,
                    Ok(Take::Spent) => self.spent.store(window, Ordering::Relaxed),
                    Err(error) => {
                        self.mark_unreachable(&error);
                        continue;
                    }
                }
            }
            // The next second, with a jitter so the fleet's waiters do not all write at once.
            let jitter = f64::from(rand_millis(20)) / 1000.0;
            let wait = (window as f64 + 1.0 - epoch_seconds()).max(0.0) + jitter;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// Counts one call in `window` if the window has budget left.
    async fn take(&self, window: u64) -> Result<Take, String> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(face_budget::WINDOW, AttributeValue::S(window.to_string()))
            .update_expression("ADD #calls :one SET #expires = :expires")
            .condition_expression("attribute_not_exists(#calls) OR #calls < :budget")
            .expression_attribute_names("#calls", face_budget::CALLS)
            .expression_attribute_names("#expires", face_budget::EXPIRES_AT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":budget", AttributeValue::N(self.per_second.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N((window + 60).to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                self.reachable_again();
                Ok(Take::Taken)
            }
            Err(error) => {
                let error = error.into_service_error();
                if error.is_conditional_check_failed_exception() {
                    self.reachable_again();
                    Ok(Take::Spent)
                } else {
                    Err(crate::report::chain(&error))
                }
            }
        }
    }

    /// Whether the table failed this process within the last [`UNREACHABLE_RETRY`]. Once that
    /// has passed the next call tries the table again; only its answer clears the state.
    fn unreachable(&self) -> bool {
        self.unreachable_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|deadline| Instant::now() < deadline)
    }

    fn mark_unreachable(&self, error: &str) {
        let was = self
            .unreachable_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Instant::now() + UNREACHABLE_RETRY);
        if was.is_none() {
            tracing::warn!(
                table = %self.table,
                %error,
                retry_seconds = UNREACHABLE_RETRY.as_secs(),
                "the face-call budget table cannot be reached: this process keeps to its fallback share"
            );
        }
    }

    fn reachable_again(&self) {
        let was = self
            .unreachable_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if was.is_some() {
            tracing::info!(table = %self.table, "the face-call budget table answers again");
        }
    }
}

fn epoch_seconds() -> f64 {
    Utc::now().timestamp_micros() as f64 / 1e6
}

/// A few milliseconds of jitter, from the clock's nanoseconds (no need for a random source).
fn rand_millis(below: u32) -> u32 {
    Utc::now().timestamp_subsec_nanos() % below.max(1)
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
        let limiter = FaceServiceLimiter::new(&FaceServiceSettings::per_process(
            NonZeroU32::new(20).unwrap(),
            NonZeroU32::new(2).unwrap(),
        ));
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

    /// The table's endpoint refuses connections: calls still go out, at the fallback share,
    /// and the process stops trying the table for a while.
    #[tokio::test]
    async fn an_unreachable_budget_table_falls_back_to_the_process_share() {
        let aws = crate::aws::AwsSettings {
            endpoint_url: Some("http://127.0.0.1:1".into()),
            max_attempts: 1,
            ..crate::aws::AwsSettings::local()
        };
        let dynamodb = aws.dynamodb(&aws.sdk_config().await);
        let budget = StackBudget::new(
            dynamodb,
            "nowhere-face-budget".into(),
            NonZeroU32::new(100).unwrap(),
            NonZeroU32::new(2).unwrap(),
        );
        assert!(!budget.unreachable());
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire().await;
        }
        assert!(budget.unreachable(), "the failure is remembered");
        // The fallback's bucket (2 a second, burst 2) made the third call wait.
        assert!(
            start.elapsed() >= Duration::from_millis(300),
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
