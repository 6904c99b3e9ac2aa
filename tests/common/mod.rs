//! Helpers for the end-to-end tests: a stack of one's own on the shared emulator, and the real
//! `facegate` binary pointed at it.
//!
//! Every [`TestStack`] has a unique prefix (`fg-test-<uuid8>`), so tests run in parallel with
//! each other and with other people's stacks on the same emulator, and nothing needs a reset.
//! The emulator must be running (`scripts/stack.sh start`).
#![allow(dead_code)] // Each test file uses a different part of this module.

pub mod cognito;
pub mod pipeline;
pub mod signin;

use std::process::Output;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use facegate_shared::aws::{AwsClients, AwsSettings};
use facegate_shared::config::{Prefix, StackNames};

pub struct TestStack {
    pub prefix: Prefix,
    pub names: StackNames,
    pub clients: AwsClients,
}

impl TestStack {
    pub async fn new() -> Self {
        let prefix: Prefix = format!(
            "fg-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
        .parse()
        .expect("a valid prefix");
        let aws = AwsSettings {
            endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
            ..AwsSettings::local()
        };
        Self {
            names: StackNames::new(prefix.clone()),
            prefix,
            clients: aws.clients().await,
        }
    }

    /// Runs `facegate <args>` against this stack; returns its output whatever the exit status.
    pub async fn facegate(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_facegate"))
            .args(args)
            .env("FACEGATE_PREFIX", self.prefix.as_str())
            .env("FACEGATE_ENV", "local")
            .env("FACEGATE_LOG_FORMAT", "json")
            // Settings the developer may have exported must not change the stack under test.
            .env_remove("FACEGATE_BUCKET")
            .env_remove("FACEGATE_MAX_RECEIVE_COUNT")
            .output()
            .await
            .expect("the facegate binary runs")
    }

    /// Runs `facegate provision --skip-collection` (the face engine is not needed here) and
    /// returns its report (stdout), failing the test if provisioning failed.
    pub async fn provision(&self) -> String {
        let output = self.facegate(&["provision", "--skip-collection"]).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "facegate provision failed ({}); is the emulator running (scripts/stack.sh start)?\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    pub async fn queue_url(&self, name: &str) -> String {
        self.clients
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
            .queue_url
            .expect("a queue URL")
    }

    /// One short receive (1 s long poll) of up to 10 messages, with their receive counts.
    pub async fn receive_once(
        &self,
        queue_url: &str,
        visibility_timeout: Option<i32>,
    ) -> Vec<Message> {
        self.clients
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .set_visibility_timeout(visibility_timeout)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default()
    }

    pub async fn delete(&self, queue_url: &str, message: &Message) {
        self.clients
            .sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().expect("a receipt handle"))
            .send()
            .await
            .expect("DeleteMessage");
    }
}

/// Polls `check` until it returns `Some`, or fails the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
