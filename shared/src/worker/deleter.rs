//! Deleting handled messages in batches of up to ten, so a busy worker spends one SQS call per
//! batch rather than one per message.
//!
//! A delete that fails is logged, not retried: the message is redelivered after its visibility
//! timeout and the idempotent handler recognises it as done.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// SQS's batch limit.
const BATCH: usize = 10;
/// How long a delete may wait for companions.
const LINGER: Duration = Duration::from_millis(25);

/// A handle to the batching task.
#[derive(Clone)]
pub(crate) struct Deleter {
    tx: mpsc::Sender<(String, oneshot::Sender<bool>)>,
}

impl Deleter {
    pub(crate) fn spawn(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(run(sqs, queue_url, rx));
        Self { tx }
    }

    /// Deletes the message; true once SQS confirmed it.
    pub(crate) async fn delete(&self, receipt_handle: String) -> bool {
        let (done, confirmed) = oneshot::channel();
        if self.tx.send((receipt_handle, done)).await.is_err() {
            return false;
        }
        confirmed.await.unwrap_or(false)
    }
}

async fn run(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut rx: mpsc::Receiver<(String, oneshot::Sender<bool>)>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // The loop ends when every Deleter handle is gone and the channel is drained.
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::sleep(LINGER);
        tokio::pin!(deadline);
        while batch.len() < BATCH {
            tokio::select! {
                _ = &mut deadline => break,
                next = rx.recv() => match next {
                    Some(item) => batch.push(item),
                    None => break,
                },
            }
        }
        flush(&sqs, &queue_url, &mut batch).await;
    }
}

async fn flush(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &mut Vec<(String, oneshot::Sender<bool>)>,
) {
    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
    let entries: Vec<_> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, (handle, _))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    let result = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    let failed: Vec<String> = match &result {
        Ok(out) => out.failed().iter().map(|f| f.id().to_string()).collect(),
        Err(e) => {
            tracing::warn!(error = %crate::report::chain(e), "batch delete failed; messages will be redelivered");
            (0..batch.len()).map(|i| i.to_string()).collect()
        }
    };
    for (i, (_, done)) in batch.drain(..).enumerate() {
        let _ = done.send(!failed.contains(&i.to_string()));
    }
}
