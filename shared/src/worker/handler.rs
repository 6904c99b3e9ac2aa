//! What a worker's handler sees and what it answers.
//!
//! A handler gets one [`Message`] and says how it went: `Ok` (the message is deleted),
//! [`HandlerError::Transient`] (SQS delivers it again after a backoff; after the queue's
//! `maxReceiveCount` it lands in the dead-letter queue) or [`HandlerError::Permanent`] (the
//! input can never succeed: the handler has recorded why where the user can see it, and the
//! message is deleted so it is not retried forever). Delivery is at-least-once: a handler must
//! be idempotent.

use std::future::Future;

/// A boxed error with its chain of causes.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One received SQS message.
#[derive(Clone, Debug)]
pub struct Message {
    /// SQS's message id (stable across redeliveries).
    pub id: String,
    pub body: String,
    /// How many times SQS has delivered it, this time included (1 on the first delivery).
    pub receive_count: u32,
    /// The string message attributes (SNS raw delivery puts its attributes here).
    pub attributes: Vec<(String, String)>,
    pub(crate) receipt_handle: String,
}

impl Message {
    /// A message built by hand, for unit tests of handlers' pure logic.
    pub fn for_test(id: &str, body: &str, receive_count: u32) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            receive_count,
            attributes: Vec::new(),
            receipt_handle: String::new(),
        }
    }

    /// The value of a string message attribute.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might succeed later (a dependency is down, throttled, timed out): retry.
    #[error("transient: {0}")]
    Transient(#[source] BoxError),
    /// Will never succeed (bad input): record, delete, do not retry.
    #[error("permanent: {0}")]
    Permanent(#[source] BoxError),
}

impl HandlerError {
    pub fn transient(e: impl Into<BoxError>) -> Self {
        Self::Transient(e.into())
    }
    pub fn permanent(e: impl Into<BoxError>) -> Self {
        Self::Permanent(e.into())
    }
}

/// A queue worker's logic. The runtime calls it concurrently for different messages.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Message) -> impl Future<Output = Result<(), HandlerError>> + Send;
}
