//! The SQS worker runtime: every facegate queue worker is this one loop with a different
//! [`Handler`].
//!
//! - Long-poll receive in batches of up to ten, never more than `max_in_flight` messages at
//!   once; handlers run concurrently, each in its own task (a panic is caught and retried).
//! - While a handler runs, a heartbeat keeps its message invisible to other consumers.
//! - Success deletes (batched). A transient error hides the message for a backoff that grows
//!   with its receive count, after which SQS redelivers it; past the queue's `maxReceiveCount`
//!   the redrive policy moves it to the dead-letter queue. A permanent error is logged and the
//!   message deleted: the handler has recorded the refusal where the user sees it.
//! - On shutdown: stop receiving, give in-flight handlers `drain_secs` to finish, then hand the
//!   rest back to SQS at once (visibility 0) so another process picks them up without waiting.
//!   Nothing is lost: a message is deleted only after its handler succeeded or refused it.

mod deleter;
mod handler;
mod visibility;

pub use handler::{BoxError, Handler, HandlerError, Message};
pub use visibility::retry_delay;

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::ops::Health;
use deleter::Deleter;

/// How a worker receives and paces its messages. Every field is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerSettings {
    /// Messages this process handles at the same time, per queue. Handlers mostly wait (on S3,
    /// DynamoDB, the face service), so it takes more than the face service's own concurrency
    /// to keep it busy (`facegate bench pipeline` measures 1, 4, 8 and 16).
    #[arg(long, env = "FACEGATE_WORKER_MAX_IN_FLIGHT", default_value_t = 8)]
    pub max_in_flight: usize,
    /// Long-poll wait of one receive, in seconds (0-20).
    #[arg(long, env = "FACEGATE_WORKER_WAIT_SECS", default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=20))]
    pub wait_secs: u8,
    /// How long a received message stays hidden; renewed by the heartbeat while its handler runs.
    #[arg(long, env = "FACEGATE_WORKER_VISIBILITY_SECS", default_value_t = 30)]
    pub visibility_secs: u64,
    /// A handler still running after this long is stopped and its message retried.
    #[arg(
        long,
        env = "FACEGATE_WORKER_HANDLER_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub handler_timeout_secs: u64,
    /// Delay before the first retry of a transient failure, in milliseconds; doubles per delivery.
    #[arg(long, env = "FACEGATE_WORKER_RETRY_BASE_MS", default_value_t = 2_000)]
    pub retry_base_ms: u64,
    /// Longest delay between two retries, in seconds.
    #[arg(long, env = "FACEGATE_WORKER_RETRY_MAX_SECS", default_value_t = 300)]
    pub retry_max_secs: u64,
    /// On shutdown, how long in-flight handlers may still run before their messages are handed
    /// back (keep it under the orchestrator's grace period, 30 s by default).
    #[arg(long, env = "FACEGATE_WORKER_DRAIN_SECS", default_value_t = 20)]
    pub drain_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            wait_secs: 20,
            visibility_secs: 30,
            handler_timeout_secs: 120,
            retry_base_ms: 2_000,
            retry_max_secs: 300,
            drain_secs: 20,
        }
    }
}

/// One queue, one handler.
pub struct Worker<H> {
    inner: Arc<Inner<H>>,
}

struct Inner<H> {
    name: &'static str,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    handler: Arc<H>,
    settings: WorkerSettings,
    deleter: Deleter,
    /// Cancelled when the drain deadline passes: in-flight handlers give their messages back.
    release: CancellationToken,
    health: Health,
}

/// What became of one message.
enum Outcome {
    Succeeded,
    Retry(String),
    Refused(String),
    Released,
}

impl<H: Handler> Worker<H> {
    /// A worker named `name` (used in logs and metrics) for the queue at `queue_url`.
    pub fn new(
        name: &'static str,
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        handler: H,
        settings: WorkerSettings,
    ) -> Self {
        let queue_url = queue_url.into();
        Self {
            inner: Arc::new(Inner {
                name,
                deleter: Deleter::spawn(sqs.clone(), queue_url.clone()),
                queue_url,
                sqs,
                handler: Arc::new(handler),
                settings,
                release: CancellationToken::new(),
                health: Health::default(),
            }),
        }
    }

    /// Report readiness (first successful receive) to `health`.
    pub fn with_health(mut self, health: Health) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.health = health;
        }
        self
    }

    /// Runs until `shutdown` is cancelled, then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let inner = self.inner;
        let slots = Arc::new(Semaphore::new(inner.settings.max_in_flight.max(1)));
        let tracker = TaskTracker::new();
        let mut failures = 0u32;
        tracing::info!(worker = inner.name, queue = %inner.queue_url, "receiving");
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let mut permits = vec![first];
            while permits.len() < 10 {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let received = tokio::select! {
                // A receive cut short may already have taken messages: they reappear after
                // their visibility timeout, so nothing is lost.
                _ = shutdown.cancelled() => break,
                r = inner.receive(permits.len()) => r,
            };
            match received {
                Ok(messages) => {
                    failures = 0;
                    inner.health.mark_ready();
                    for (message, permit) in messages.into_iter().zip(permits.drain(..)) {
                        tracker.spawn(Inner::process(inner.clone(), message, permit));
                    }
                }
                Err(e) => {
                    failures += 1;
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(7)));
                    tracing::warn!(worker = inner.name, error = %e, ?pause, "receive failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracker.close();
        let drain = Duration::from_secs(inner.settings.drain_secs);
        tracing::info!(
            worker = inner.name,
            in_flight = tracker.len(),
            ?drain,
            "stopped receiving; draining"
        );
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(
                worker = inner.name,
                in_flight = tracker.len(),
                "drain deadline passed: releasing in-flight messages"
            );
            inner.release.cancel();
            tracker.wait().await;
        }
        tracing::info!(worker = inner.name, "stopped");
    }
}

impl<H: Handler> Inner<H> {
    async fn receive(&self, max: usize) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(i32::from(self.settings.wait_secs))
            .visibility_timeout(visibility::secs(self.visibility()))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| crate::report::chain(&e))?;
        let messages: Vec<Message> = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receipt_handle = m.receipt_handle?;
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let attributes = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.string_value?)))
                    .collect();
                Some(Message {
                    id: m.message_id.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                    attributes,
                    receipt_handle,
                })
            })
            .collect();
        metrics::counter!("facegate_worker_received_total", "worker" => self.name)
            .increment(messages.len() as u64);
        Ok(messages)
    }

    fn visibility(&self) -> Duration {
        Duration::from_secs(self.settings.visibility_secs.max(1))
    }

    async fn process(self: Arc<Self>, message: Message, _slot: OwnedSemaphorePermit) {
        let span = tracing::info_span!(
            "message",
            worker = self.name,
            message_id = %message.id,
            receive_count = message.receive_count,
        );
        async move {
            let in_flight = metrics::gauge!("facegate_worker_in_flight", "worker" => self.name);
            in_flight.increment(1.0);
            let started = std::time::Instant::now();
            let outcome = self.run_handler(&message).await;
            metrics::histogram!("facegate_worker_handler_seconds", "worker" => self.name)
                .record(started.elapsed().as_secs_f64());
            self.settle(&message, outcome).await;
            in_flight.decrement(1.0);
        }
        .instrument(span)
        .await
    }

    /// Runs the handler in its own task (so a panic is contained) under the heartbeat.
    async fn run_handler(&self, message: &Message) -> Outcome {
        let beat_stop = CancellationToken::new();
        let beat = tokio::spawn(visibility::heartbeat(
            self.sqs.clone(),
            self.queue_url.clone(),
            message.receipt_handle.clone(),
            self.visibility(),
            beat_stop.clone(),
        ));
        let handler = self.handler.clone();
        let owned = message.clone();
        let mut task = tokio::spawn(
            async move { handler.handle(&owned).await }.instrument(tracing::Span::current()),
        );
        let timeout = Duration::from_secs(self.settings.handler_timeout_secs.max(1));
        let outcome = tokio::select! {
            joined = &mut task => match joined {
                Ok(Ok(())) => Outcome::Succeeded,
                Ok(Err(HandlerError::Transient(e))) => Outcome::Retry(crate::report::chain(e.as_ref())),
                Ok(Err(HandlerError::Permanent(e))) => Outcome::Refused(crate::report::chain(e.as_ref())),
                Err(join) if join.is_panic() => Outcome::Retry(format!("handler panicked: {}", panic_text(join))),
                Err(join) => Outcome::Retry(format!("handler task ended: {join}")),
            },
            _ = self.release.cancelled() => {
                task.abort();
                Outcome::Released
            }
            _ = tokio::time::sleep(timeout) => {
                task.abort();
                Outcome::Retry(format!("handler still running after {timeout:?}"))
            }
        };
        beat_stop.cancel();
        let _ = beat.await;
        outcome
    }

    async fn settle(&self, message: &Message, outcome: Outcome) {
        let label = match outcome {
            Outcome::Succeeded => {
                if !self.deleter.delete(message.receipt_handle.clone()).await {
                    tracing::warn!("handled, but the delete failed: it will be redelivered");
                }
                "succeeded"
            }
            Outcome::Refused(reason) => {
                tracing::error!(%reason, "refused permanently; deleting");
                self.deleter.delete(message.receipt_handle.clone()).await;
                "failed_permanently"
            }
            Outcome::Retry(reason) => {
                let delay = retry_delay(
                    message.receive_count,
                    Duration::from_millis(self.settings.retry_base_ms),
                    Duration::from_secs(self.settings.retry_max_secs),
                    fastrand::f64(),
                );
                tracing::warn!(%reason, ?delay, "transient failure; will be redelivered");
                self.set_visibility(message, delay).await;
                "retried"
            }
            Outcome::Released => {
                tracing::info!("released at shutdown");
                self.set_visibility(message, Duration::ZERO).await;
                "released"
            }
        };
        metrics::counter!("facegate_worker_messages_total", "worker" => self.name, "outcome" => label)
            .increment(1);
    }

    async fn set_visibility(&self, message: &Message, after: Duration) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(visibility::secs(after))
            .send()
            .await;
        if let Err(e) = result {
            // The message reappears when its current visibility runs out instead.
            tracing::warn!(error = %crate::report::chain(&e), "could not change visibility");
        }
    }
}

fn panic_text(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into())
}
