//! Messages that travel through SNS topics into SQS queues, and how they are published.
//!
//! facegate's subscriptions keep SNS's default, *raw message delivery off*: the SQS body is
//! SNS's JSON envelope (`Type`, `MessageId`, `TopicArn`, `Message`, `Timestamp`,
//! `MessageAttributes`, ...), with our event as a JSON string in `Message`. That keeps the
//! message attributes (`kind`, `severity`, `result`) next to the event wherever it lands, and
//! is what provisioning sets on every subscription. The envelope is `aws_lambda_events`'
//! [`SnsMessage`], which reads both the Lambda spelling and the SQS one (`SigningCertURL`).

use std::collections::HashMap;

use aws_lambda_events::event::sns::SnsMessage;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Topic;

/// Why an SQS body is not the expected SNS notification.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message body is not an SNS notification envelope: {source}")]
    Envelope {
        #[source]
        source: serde_json::Error,
    },
    #[error("SNS message {message_id} from {topic_arn} is a {kind}, not a Notification")]
    NotANotification {
        message_id: String,
        topic_arn: String,
        kind: String,
    },
    #[error("SNS message {message_id} from {topic_arn} does not hold a {expected}: {source}")]
    Message {
        message_id: String,
        topic_arn: String,
        expected: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// An SNS notification taken out of its envelope: the event and the envelope it came in.
#[derive(Clone, Debug)]
pub struct Notification<T> {
    pub event: T,
    pub envelope: SnsMessage,
}

impl<T: DeserializeOwned> Notification<T> {
    /// Parses an SQS body delivered by an SNS subscription (raw delivery off).
    pub fn parse(body: &str) -> Result<Self, EnvelopeError> {
        let envelope: SnsMessage =
            serde_json::from_str(body).map_err(|source| EnvelopeError::Envelope { source })?;
        if envelope.sns_message_type != "Notification" {
            return Err(EnvelopeError::NotANotification {
                message_id: envelope.message_id,
                topic_arn: envelope.topic_arn,
                kind: envelope.sns_message_type,
            });
        }
        let event =
            serde_json::from_str(&envelope.message).map_err(|source| EnvelopeError::Message {
                message_id: envelope.message_id.clone(),
                topic_arn: envelope.topic_arn.clone(),
                expected: std::any::type_name::<T>()
                    .rsplit("::")
                    .next()
                    .unwrap_or("event"),
                source,
            })?;
        Ok(Self { event, envelope })
    }

    /// A string message attribute of the envelope, e.g. `kind`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.envelope
            .message_attributes
            .get(name)
            .map(|a| a.value.as_str())
    }
}

/// An event published on one of facegate's topics.
pub trait Publishable: Serialize {
    /// The topic it goes to.
    const TOPIC: Topic;

    /// The SNS message attributes subscribers filter on, as `(name, string value)`.
    fn attributes(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("could not serialise the event for {topic_arn}: {source}")]
    Serialise {
        topic_arn: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Publish to {topic_arn} failed")]
    Sns {
        topic_arn: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The SNS message attributes of `event`, ready for `Publish`.
pub fn message_attributes(event: &impl Publishable) -> HashMap<String, MessageAttributeValue> {
    event
        .attributes()
        .into_iter()
        .filter_map(|(name, value)| {
            // data_type is set, so build cannot fail; filter_map keeps this free of unwrap.
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

/// Publishes `event` as JSON, with its message attributes, on `topic_arn`; returns SNS's
/// message id.
pub async fn publish<E: Publishable>(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    event: &E,
) -> Result<String, PublishError> {
    let message = serde_json::to_string(event).map_err(|source| PublishError::Serialise {
        topic_arn: topic_arn.into(),
        source,
    })?;
    let output = sns
        .publish()
        .topic_arn(topic_arn)
        .message(message)
        .set_message_attributes(Some(message_attributes(event)))
        .send()
        .await
        .map_err(|e| PublishError::Sns {
            topic_arn: topic_arn.into(),
            source: Box::new(e),
        })?;
    Ok(output.message_id.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_DOCUMENTED: &str =
        include_str!("../../tests/fixtures/sns-envelope-aws-documented.json");

    #[test]
    fn documented_envelope_parses_with_attributes() {
        let note = Notification::<String>::parse(
            &AWS_DOCUMENTED.replace("\"Hello world!\"", "\"\\\"hi\\\"\""),
        )
        .unwrap();
        assert_eq!(note.event, "hi");
        assert_eq!(note.attribute("kind"), Some("lockout"));
        assert_eq!(note.attribute("severity"), Some("high"));
        assert_eq!(
            note.envelope.message_id,
            "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
        );
    }

    #[test]
    fn a_message_of_the_wrong_type_names_what_was_expected() {
        let err = Notification::<u32>::parse(AWS_DOCUMENTED).unwrap_err();
        assert!(
            matches!(
                err,
                EnvelopeError::Message {
                    expected: "u32",
                    ..
                }
            ),
            "{err}"
        );
        let confirmation =
            AWS_DOCUMENTED.replace("\"Notification\"", "\"SubscriptionConfirmation\"");
        assert!(matches!(
            Notification::<String>::parse(&confirmation).unwrap_err(),
            EnvelopeError::NotANotification { .. }
        ));
        assert!(matches!(
            Notification::<String>::parse("{}").unwrap_err(),
            EnvelopeError::Envelope { .. }
        ));
    }
}
