//! [`Verifier`]: what every trigger and route shares: the stack's clients and names, the one
//! face-service limiter of the process, and the settings.

use std::sync::Arc;

use facegate_shared::config::{Table, Topic};
use facegate_shared::rate_limit::FaceServiceLimiter;
use facegate_shared::stack::Stack;

use crate::deadline::Deadline;
use crate::settings::VerifierSettings;

/// The verifier's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    stack: Stack,
    limiter: Arc<FaceServiceLimiter>,
    settings: VerifierSettings,
}

impl Verifier {
    pub fn new(stack: Stack, limiter: Arc<FaceServiceLimiter>, settings: VerifierSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                stack,
                limiter,
                settings,
            }),
        }
    }

    /// A verifier that serves no request: for administrative work on the stack, such as
    /// `facegate erase`, which reads none of the request settings (the defaults, no token).
    pub fn for_administration(stack: Stack, limiter: Arc<FaceServiceLimiter>) -> Self {
        let mut settings = VerifierSettings::local(String::new());
        settings.token = None;
        Self::new(stack, limiter, settings)
    }

    pub fn stack(&self) -> &Stack {
        &self.inner.stack
    }

    pub fn settings(&self) -> &VerifierSettings {
        &self.inner.settings
    }

    pub fn limiter(&self) -> &FaceServiceLimiter {
        &self.inner.limiter
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.inner.stack.clients.s3
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.inner.stack.clients.dynamodb
    }

    pub fn rekognition(&self) -> &aws_sdk_rekognition::Client {
        &self.inner.stack.clients.rekognition
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        &self.inner.stack.clients.sns
    }

    pub fn bucket(&self) -> &str {
        self.inner.stack.names.bucket()
    }

    pub fn collection(&self) -> String {
        self.inner.stack.names.collection()
    }

    pub fn table(&self, table: Table) -> String {
        self.inner.stack.table(table)
    }

    pub fn auth_events_topic(&self) -> &str {
        self.inner.stack.topic_arn(Topic::AuthEvents)
    }

    /// A fresh deadline for one request.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.inner.settings.deadline())
    }
}
