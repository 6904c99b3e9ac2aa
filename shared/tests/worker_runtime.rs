//! The worker runtime against the real emulator (ministack on 127.0.0.1:4566): each test makes
//! its own queue and dead-letter queue, runs a real `Worker` with a handler that counts what it
//! sees, and checks what SQS holds afterwards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use facegate_shared::{
    aws::AwsSettings,
    worker::{Handler, HandlerError, Message, Worker, WorkerSettings},
};
use tokio_util::sync::CancellationToken;

/// A queue with a DLQ after `max_receive` deliveries, under a unique name.
struct TestQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    dlq_url: String,
}

impl TestQueue {
    async fn new(max_receive: u32) -> Self {
        let settings = AwsSettings::local();
        let sqs = settings.sqs(&settings.sdk_config().await);
        let name = format!("fg-rt-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .expect("create DLQ (is the stack up? scripts/stack.sh start)")
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.to_string()});
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                redrive.to_string(),
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self { sqs, url, dlq_url }
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Messages visible in `url` now (received with a 0 s visibility, so they stay there).
    async fn peek(&self, url: &str) -> Vec<String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect()
    }

    async fn counts(&self, url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let n = |k: A| attrs.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        max_in_flight: 4,
        wait_secs: 1,
        visibility_secs: 2,
        handler_timeout_secs: 30,
        retry_base_ms: 0,
        retry_max_secs: 0,
        drain_secs: 5,
    }
}

/// What a test handler does with each delivery.
#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    Transient,
    Permanent,
    PanicOnce,
    Sleep(Duration),
}

#[derive(Clone)]
struct Probe {
    behaviour: Behaviour,
    calls: Arc<AtomicU32>,
    done: Arc<AtomicU32>,
}

impl Probe {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            calls: Arc::default(),
            done: Arc::default(),
        }
    }
}

impl Handler for Probe {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = match self.behaviour {
            Behaviour::Succeed => Ok(()),
            Behaviour::Transient => Err(HandlerError::transient("dependency down")),
            Behaviour::Permanent => Err(HandlerError::permanent("not an image")),
            Behaviour::PanicOnce if message.receive_count == 1 => panic!("handler bug"),
            Behaviour::PanicOnce => Ok(()),
            Behaviour::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        };
        if result.is_ok() {
            self.done.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

/// Runs a worker in the background; returns its shutdown token and join handle.
fn start(
    queue: &TestQueue,
    probe: Probe,
    settings: WorkerSettings,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let worker = Worker::new(
        "test",
        queue.sqs.clone(),
        queue.url.clone(),
        probe,
        settings,
    );
    let handle = tokio::spawn(worker.run(stop.clone()));
    (stop, handle)
}

async fn until(deadline: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn success_deletes_every_message_once() {
    let q = TestQueue::new(3).await;
    for i in 0..15 {
        q.send(&format!("m{i}")).await;
    }
    let probe = Probe::new(Behaviour::Succeed);
    let (stop, run) = start(&q, probe.clone(), fast_settings());
    assert!(
        until(Duration::from_secs(20), async || probe
            .done
            .load(Ordering::SeqCst)
            >= 15)
        .await
    );
    stop.cancel();
    run.await.unwrap();
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        15,
        "no message handled twice"
    );
    assert!(
        until(Duration::from_secs(5), async || q.counts(&q.url).await
            == (0, 0))
        .await,
        "queue empty"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_then_dead_lettered() {
    let q = TestQueue::new(3).await;
    q.send("poison").await;
    let probe = Probe::new(Behaviour::Transient);
    let (stop, run) = start(&q, probe.clone(), fast_settings());
    let in_dlq = until(Duration::from_secs(30), async || {
        q.counts(&q.dlq_url).await.0 == 1
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    assert!(in_dlq, "the message reached the DLQ");
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        3,
        "delivered exactly maxReceiveCount times"
    );
    assert_eq!(q.peek(&q.dlq_url).await, vec!["poison".to_string()]);
    assert_eq!(q.counts(&q.url).await, (0, 0));
}

#[tokio::test]
async fn permanent_failures_are_deleted_not_retried() {
    let q = TestQueue::new(3).await;
    q.send("garbage").await;
    let probe = Probe::new(Behaviour::Permanent);
    let (stop, run) = start(&q, probe.clone(), fast_settings());
    assert!(
        until(Duration::from_secs(10), async || probe
            .calls
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // Give a wrongly retried message time to come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    run.await.unwrap();
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
    assert_eq!(q.counts(&q.url).await, (0, 0));
    assert_eq!(q.counts(&q.dlq_url).await, (0, 0));
}

#[tokio::test]
async fn a_panicking_handler_is_retried_and_the_worker_survives() {
    let q = TestQueue::new(5).await;
    q.send("bug").await;
    q.send("fine").await;
    let probe = Probe::new(Behaviour::PanicOnce);
    let (stop, run) = start(&q, probe.clone(), fast_settings());
    assert!(
        until(Duration::from_secs(20), async || probe
            .done
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    stop.cancel();
    run.await.expect("the worker itself did not panic");
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        4,
        "each message panicked once, then succeeded"
    );
    assert_eq!(q.counts(&q.url).await, (0, 0));
}

#[tokio::test]
async fn heartbeat_keeps_a_slow_message_from_a_second_consumer() {
    let q = TestQueue::new(5).await;
    q.send("slow").await;
    // Two workers on one queue; the handler outlives the 2 s visibility three times over.
    let probe = Probe::new(Behaviour::Sleep(Duration::from_secs(6)));
    let (stop_a, run_a) = start(&q, probe.clone(), fast_settings());
    let (stop_b, run_b) = start(&q, probe.clone(), fast_settings());
    assert!(
        until(Duration::from_secs(20), async || probe
            .done
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_a.cancel();
    stop_b.cancel();
    run_a.await.unwrap();
    run_b.await.unwrap();
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        1,
        "never handed to the second worker"
    );
    assert_eq!(q.counts(&q.url).await, (0, 0));
}

#[tokio::test]
async fn shutdown_drains_then_hands_back_what_is_still_running() {
    let q = TestQueue::new(5).await;
    q.send("long").await;
    let probe = Probe::new(Behaviour::Sleep(Duration::from_secs(60)));
    let settings = WorkerSettings {
        drain_secs: 1,
        visibility_secs: 30,
        ..fast_settings()
    };
    let (stop, run) = start(&q, probe.clone(), settings);
    assert!(
        until(Duration::from_secs(10), async || probe
            .calls
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    let asked = Instant::now();
    stop.cancel();
    run.await.unwrap();
    let took = asked.elapsed();
    // Correctness, not speed: the worker returned although its handler would run for a minute.
    assert!(
        took < Duration::from_secs(30),
        "stopped within the grace period ({took:?})"
    );
    // Released with visibility 0: visible again at once, not after the 30 s visibility timeout.
    assert_eq!(q.peek(&q.url).await, vec!["long".to_string()]);
}
