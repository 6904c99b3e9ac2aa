//! What the soak hears, as an operator subscribed to the stack would: a queue of its own on
//! the `auth-events` topic (every sign-in answer the verifier published, success or failure)
//! and one on `security-alerts` (every alert). The audit counts from them: the failures the
//! alerts worker should have counted, and the alerts raised.
//!
//! The queues live with the stack (`<prefix>-soak-auth-events`, `<prefix>-soak-alerts`), so
//! they go through the emulator's restart like every other queue, and are read once the load
//! is over.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use facegate_shared::config::Topic;
use facegate_shared::events::{AuthEvent, Notification, SecurityAlert};
use facegate_shared::stack::Stack;
use serde::de::DeserializeOwned;

use super::SoakError;

/// A queue subscribed to a topic of the stack.
pub struct Feed {
    queue_url: String,
}

/// What the feeds held at the end.
#[derive(Debug, Default)]
pub struct Heard {
    pub auth_events: Vec<AuthEvent>,
    pub alerts: Vec<SecurityAlert>,
}

impl Feed {
    /// Creates the queue `<prefix>-soak-<name>` and subscribes it to `topic` (every message,
    /// no filter).
    pub async fn subscribe(stack: &Stack, topic: Topic, name: &str) -> Result<Self, SoakError> {
        let sqs = &stack.clients.sqs;
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{}-soak-{name}", stack.names.prefix()))
            .send()
            .await
            .map_err(|e| SoakError::aws("CreateQueue (feed)", e))?
            .queue_url
            .ok_or_else(|| SoakError::Run("CreateQueue answered no queue URL".into()))?;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| SoakError::aws("GetQueueAttributes (feed)", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| SoakError::Run("the feed's queue has no ARN".into()))?;
        stack
            .clients
            .sns
            .subscribe()
            .topic_arn(stack.topic_arn(topic))
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .map_err(|e| SoakError::aws("Subscribe (feed)", e))?;
        Ok(Feed { queue_url })
    }

    /// Every message on the queue, taken off it, until `quiet` passes without one.
    pub async fn drain<T: DeserializeOwned>(
        &self,
        stack: &Stack,
        quiet: Duration,
    ) -> Result<Vec<T>, SoakError> {
        let sqs = &stack.clients.sqs;
        let mut events = Vec::new();
        let mut last_message = Instant::now();
        while last_message.elapsed() < quiet {
            let messages = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| SoakError::aws("ReceiveMessage (feed)", e))?
                .messages
                .unwrap_or_default();
            if !messages.is_empty() {
                last_message = Instant::now();
            }
            for message in messages {
                let body = message.body().unwrap_or_default();
                let note = Notification::<T>::parse(body).map_err(|e| {
                    SoakError::Run(format!("a feed message that does not parse: {e}: {body}"))
                })?;
                events.push(note.event);
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| SoakError::aws("DeleteMessage (feed)", e))?;
                }
            }
        }
        Ok(events)
    }
}

/// The two feeds of a run.
pub struct Feeds {
    auth_events: Feed,
    alerts: Feed,
}

impl Feeds {
    pub async fn subscribe(stack: &Stack) -> Result<Self, SoakError> {
        Ok(Feeds {
            auth_events: Feed::subscribe(stack, Topic::AuthEvents, "auth-events").await?,
            alerts: Feed::subscribe(stack, Topic::SecurityAlerts, "alerts").await?,
        })
    }

    /// Everything both feeds hold.
    pub async fn read(&self, stack: &Stack) -> Result<Heard, SoakError> {
        let quiet = Duration::from_secs(3);
        Ok(Heard {
            auth_events: self.auth_events.drain(stack, quiet).await?,
            alerts: self.alerts.drain(stack, quiet).await?,
        })
    }
}
