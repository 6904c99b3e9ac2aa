//! Watching the dead-letter queues: every `dlq_check_secs`, the approximate number of messages
//! in each work queue's DLQ goes to CloudWatch (`DeadLetters`, dimension `Queue`), and a
//! `dead-letter` alert is raised when a DLQ holds more messages than at the last check (or any
//! at the first). A DLQ filling means registrations or alerts are being lost: high severity.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use facegate_shared::config::Queue;
use facegate_shared::events::{AlertKind, AlertSubject, SecurityAlert, Severity};
use facegate_shared::stack::Stack;
use tokio_util::sync::CancellationToken;

use super::alerter::{self, Metric};

/// Checks every DLQ until `shutdown`.
pub async fn watch(stack: Stack, every: Duration, shutdown: CancellationToken) {
    let mut last_seen: HashMap<Queue, i64> = HashMap::new();
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        for queue in Queue::ALL {
            check(&stack, queue, &mut last_seen).await;
        }
    }
}

/// One check of one DLQ.
async fn check(stack: &Stack, queue: Queue, last_seen: &mut HashMap<Queue, i64>) {
    let name = stack.names.dlq(queue);
    let count = match stack.queue_depth(stack.dlq_url(queue)).await {
        // A dead-lettered message nobody has received is waiting; count only those, as before.
        Ok(depth) => i64::try_from(depth.waiting).unwrap_or(i64::MAX),
        Err(e) => {
            tracing::warn!(queue = %name, error = %facegate_shared::report::chain(&e), "could not read the dead-letter queue's size");
            return;
        }
    };
    alerter::put_metric(
        stack,
        Metric::DeadLetters,
        count as f64,
        Some(("Queue", &name)),
    )
    .await;
    let before = last_seen.insert(queue, count).unwrap_or(0);
    if count <= before {
        return;
    }
    let alert = dead_letter_alert(&name, count, before);
    if let Err(e) = alerter::raise_once(stack, &alert).await {
        tracing::error!(queue = %name, error = %facegate_shared::report::chain(&e), "could not raise the dead-letter alert");
        // Seen again at the next check as growth, and retried.
        last_seen.insert(queue, before);
    }
}

/// The alert for `queue` holding `count` messages (up from `before`). Its id carries the
/// count and the hour, so several alert workers checking the same queue raise it once.
fn dead_letter_alert(queue: &str, count: i64, before: i64) -> SecurityAlert {
    let now = Utc::now();
    let mut details = serde_json::Map::new();
    details.insert("messages".into(), count.into());
    details.insert("previously".into(), before.into());
    SecurityAlert {
        alert_id: format!("dead-letter:{queue}:{count}:{}", now.timestamp() / 3600),
        kind: AlertKind::DeadLetter,
        severity: Severity::High,
        subject: AlertSubject::Queue(queue.to_string()),
        summary: format!("dead-letter queue {queue} holds {count} message(s), up from {before}"),
        details,
        time: now,
    }
}
