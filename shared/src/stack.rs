//! A running process's view of its stack: the AWS clients, the resource names, and the
//! addresses (queue URLs, topic ARNs) resolved once at start-up.
//!
//! Every role starts from [`Stack::connect`]. It fails fast, with "run `facegate provision`",
//! when a queue or topic is missing, instead of failing on the first message.

use std::collections::HashMap;

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::{
    aws::{AwsClients, AwsSettings},
    config::{Queue, StackNames, StackSettings, Table, Topic},
};

/// The settings every role shares: where AWS is, and which stack.
#[derive(clap::Args, Clone, Debug)]
pub struct StackArgs {
    #[command(flatten)]
    pub aws: AwsSettings,
    #[command(flatten)]
    pub stack: StackSettings,
}

/// Why a role could not find its stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(
        "{what} `{name}` does not exist: run `facegate provision` (same FACEGATE_PREFIX) first"
    )]
    Missing { what: &'static str, name: String },
    #[error("{call} failed: {source}")]
    Aws {
        call: &'static str,
        #[source]
        source: crate::worker::BoxError,
    },
}

/// Clients, names and resolved addresses of one stack. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stack {
    pub clients: AwsClients,
    pub names: StackNames,
    pub settings: StackSettings,
    pub aws: AwsSettings,
    queue_urls: HashMap<String, String>,
    topic_arns: HashMap<Topic, String>,
}

impl Stack {
    /// Builds the clients and resolves every queue (and dead-letter queue) and topic.
    pub async fn connect(args: &StackArgs) -> Result<Self, StackError> {
        let clients = args.aws.clients().await;
        let names = args.stack.names();
        let mut queue_urls = HashMap::new();
        for queue in Queue::ALL {
            for name in [names.queue(queue), names.dlq(queue)] {
                let url = queue_url(&clients.sqs, &name).await?;
                queue_urls.insert(name, url);
            }
        }
        let topic_arns = topic_arns(&clients.sns, &names).await?;
        Ok(Self {
            clients,
            names,
            settings: args.stack.clone(),
            aws: args.aws.clone(),
            queue_urls,
            topic_arns,
        })
    }

    /// The URL of a work queue.
    pub fn queue_url(&self, queue: Queue) -> &str {
        &self.queue_urls[&self.names.queue(queue)]
    }

    /// The URL of a work queue's dead-letter queue.
    pub fn dlq_url(&self, queue: Queue) -> &str {
        &self.queue_urls[&self.names.dlq(queue)]
    }

    pub fn topic_arn(&self, topic: Topic) -> &str {
        &self.topic_arns[&topic]
    }

    pub fn table(&self, table: Table) -> String {
        self.names.table(table)
    }

    /// How many messages the queue at `url` holds, as SQS approximates it.
    pub async fn queue_depth(
        &self,
        url: &str,
    ) -> Result<QueueDepth, SdkError<GetQueueAttributesError>> {
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            waiting: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

/// A queue's messages: waiting to be received, and received but not yet deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub in_flight: u64,
}

impl QueueDepth {
    pub fn total(self) -> u64 {
        self.waiting + self.in_flight
    }
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, StackError> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url.ok_or_else(|| StackError::Missing {
            what: "queue",
            name: name.into(),
        }),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist()) =>
        {
            Err(StackError::Missing {
                what: "queue",
                name: name.into(),
            })
        }
        Err(e) => Err(StackError::Aws {
            call: "GetQueueUrl",
            source: Box::new(e),
        }),
    }
}

async fn topic_arns(
    sns: &aws_sdk_sns::Client,
    names: &StackNames,
) -> Result<HashMap<Topic, String>, StackError> {
    let wanted: HashMap<String, Topic> = Topic::ALL
        .into_iter()
        .map(|t| (names.topic(t), t))
        .collect();
    let mut found = HashMap::new();
    let mut pages = sns.list_topics().into_paginator().items().send();
    while let Some(topic) = pages.next().await {
        let topic = topic.map_err(|e| StackError::Aws {
            call: "ListTopics",
            source: Box::new(e),
        })?;
        if let Some(arn) = topic.topic_arn {
            let name = arn.rsplit(':').next().unwrap_or_default();
            if let Some(t) = wanted.get(name) {
                found.insert(*t, arn);
            }
        }
    }
    for (name, topic) in wanted {
        if !found.contains_key(&topic) {
            return Err(StackError::Missing {
                what: "topic",
                name,
            });
        }
    }
    Ok(found)
}
