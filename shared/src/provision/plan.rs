//! The plan: every resource of a stack and how it should look, derived from the settings
//! alone (no AWS call), so `--dry-run` can print it and the apply step can follow it.

use std::fmt;

use serde_json::json;

use crate::config::{
    DLQ_RETENTION_SECS, Queue, REGISTRATIONS_PREFIX, SIGNIN_EXPIRY_DAYS, SIGNIN_PREFIX,
    StackSettings, Topic,
};
use crate::tables::{self, KeyAttribute, KeyType, TableSpec};

/// The S3 events that start a registration.
pub const REGISTRATION_EVENTS: &str = "s3:ObjectCreated:*";
/// The id of the bucket's notification configuration (stable, so a re-run recognises it).
pub const NOTIFICATION_ID: &str = "facegate-registrations";
/// The id of the lifecycle rule expiring sign-in selfies.
pub const SIGNIN_EXPIRY_RULE_ID: &str = "facegate-expire-signin";

/// The whole stack.
#[derive(Clone, Debug)]
pub struct Plan {
    pub prefix: String,
    pub bucket: BucketPlan,
    pub queues: Vec<QueuePlan>,
    pub topics: Vec<TopicPlan>,
    pub tables: Vec<(String, TableSpec)>,
    /// The Rekognition collection.
    pub collection: String,
    /// `false` with `--skip-collection` (the face engine is not running).
    pub create_collection: bool,
    /// The user pool and its trigger function; `None` where they come from elsewhere (on AWS,
    /// the CloudFormation template) or with `--skip-user-pool`.
    pub sign_in: Option<SignInPlan>,
}

/// The Cognito side of sign-in: a user pool whose triggers are one Lambda function.
#[derive(Clone, Debug)]
pub struct SignInPlan {
    pub pool: UserPoolPlan,
    pub function: TriggerFunctionPlan,
}

#[derive(Clone, Debug)]
pub struct UserPoolPlan {
    pub name: String,
    pub app_client: String,
}

/// The function that runs `<binary> verifier --lambda` for every trigger of the pool.
#[derive(Clone, Debug)]
pub struct TriggerFunctionPlan {
    pub name: String,
    /// The facegate executable the function runs (an absolute path on this host).
    pub binary: std::path::PathBuf,
    /// The function's whole configuration: the stack's endpoints and facegate's settings.
    pub environment: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct BucketPlan {
    pub name: String,
    /// The queue notified of new objects under [`REGISTRATIONS_PREFIX`].
    pub notify_queue: String,
    pub notify_prefix: &'static str,
    pub expire_prefix: &'static str,
    pub expire_after_days: i32,
}

/// Who may send to a queue; becomes one statement of the queue's access policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// S3 event notifications of this bucket.
    Bucket(String),
    /// This SNS topic (by name).
    Topic(String),
}

/// A work queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct QueuePlan {
    pub queue: Queue,
    pub name: String,
    pub dlq: String,
    pub max_receive_count: u32,
    pub visibility_timeout_secs: u32,
    pub message_retention_secs: u32,
    pub receive_wait_secs: u32,
    pub senders: Vec<Sender>,
}

/// A topic and the queues subscribed to it.
#[derive(Clone, Debug)]
pub struct TopicPlan {
    pub topic: Topic,
    pub name: String,
    pub subscriptions: Vec<SubscriptionPlan>,
}

/// An SQS subscription, raw message delivery off (see [`crate::events::sns`]).
#[derive(Clone, Debug)]
pub struct SubscriptionPlan {
    pub queue: String,
    /// On message attributes; `None` lets everything through.
    pub filter_policy: Option<serde_json::Value>,
}

impl Plan {
    pub fn new(stack: &StackSettings, with_collection: bool) -> Self {
        let names = stack.names();
        // Which topic feeds which queue, and with what filter: the one place this is decided.
        let subscriptions = |topic| match topic {
            Topic::Pipeline => vec![SubscriptionPlan {
                queue: names.queue(Queue::Dedup),
                filter_policy: None,
            }],
            Topic::AuthEvents => vec![SubscriptionPlan {
                queue: names.queue(Queue::Alerts),
                // Only failures are worth counting; successes stay off the alerts queue.
                filter_policy: Some(json!({ crate::events::auth::RESULT_ATTRIBUTE: ["failure"] })),
            }],
            // Security operations subscribe their own endpoints.
            Topic::SecurityAlerts => vec![],
        };
        let topics: Vec<TopicPlan> = Topic::ALL
            .into_iter()
            .map(|topic| TopicPlan {
                topic,
                name: names.topic(topic),
                subscriptions: subscriptions(topic),
            })
            .collect();
        let bucket = BucketPlan {
            name: names.bucket().to_string(),
            notify_queue: names.queue(Queue::Uploads),
            notify_prefix: REGISTRATIONS_PREFIX,
            expire_prefix: SIGNIN_PREFIX,
            expire_after_days: SIGNIN_EXPIRY_DAYS,
        };
        let queues = Queue::ALL
            .into_iter()
            .map(|queue| {
                let name = names.queue(queue);
                let mut senders: Vec<Sender> = topics
                    .iter()
                    .filter(|t| t.subscriptions.iter().any(|s| s.queue == name))
                    .map(|t| Sender::Topic(t.name.clone()))
                    .collect();
                if bucket.notify_queue == name {
                    senders.push(Sender::Bucket(bucket.name.clone()));
                }
                QueuePlan {
                    queue,
                    dlq: names.dlq(queue),
                    name,
                    max_receive_count: stack.max_receive_count,
                    visibility_timeout_secs: stack.visibility_timeout_secs,
                    message_retention_secs: stack.message_retention_secs,
                    receive_wait_secs: stack.receive_wait_secs,
                    senders,
                }
            })
            .collect();
        Self {
            prefix: names.prefix().to_string(),
            bucket,
            queues,
            topics,
            tables: tables::all()
                .into_iter()
                .map(|spec| (names.table(spec.table), spec))
                .collect(),
            collection: names.collection(),
            create_collection: with_collection,
            sign_in: None,
        }
    }

    /// The same plan with the user pool and its trigger function running `binary`.
    pub fn with_sign_in(
        mut self,
        stack: &StackSettings,
        binary: std::path::PathBuf,
        environment: std::collections::BTreeMap<String, String>,
    ) -> Self {
        let names = stack.names();
        self.sign_in = Some(SignInPlan {
            pool: UserPoolPlan {
                name: names.user_pool(),
                app_client: names.app_client(),
            },
            function: TriggerFunctionPlan {
                name: names.trigger_function(),
                binary,
                environment,
            },
        });
        self
    }
}

fn key(attribute: &KeyAttribute) -> String {
    let kind = match attribute.kind {
        KeyType::String => "S",
        KeyType::Number => "N",
    };
    format!("{} {kind}", attribute.name)
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan for stack `{}`:", self.prefix)?;
        let b = &self.bucket;
        writeln!(f, "  bucket        {}", b.name)?;
        writeln!(
            f,
            "                notify {} of {REGISTRATION_EVENTS} under {}",
            b.notify_queue, b.notify_prefix
        )?;
        writeln!(
            f,
            "                expire {} after {} day(s)",
            b.expire_prefix, b.expire_after_days
        )?;
        for q in &self.queues {
            writeln!(
                f,
                "  queue         {} (dead-letter queue, keeps messages {DLQ_RETENTION_SECS} s)",
                q.dlq
            )?;
            writeln!(
                f,
                "  queue         {} (visibility {} s, keeps messages {} s, long poll {} s, to {} after {} receives)",
                q.name,
                q.visibility_timeout_secs,
                q.message_retention_secs,
                q.receive_wait_secs,
                q.dlq,
                q.max_receive_count
            )?;
            for sender in &q.senders {
                match sender {
                    Sender::Bucket(bucket) => {
                        writeln!(f, "                policy: bucket {bucket} may send")?
                    }
                    Sender::Topic(topic) => {
                        writeln!(f, "                policy: topic {topic} may send")?
                    }
                }
            }
        }
        for t in &self.topics {
            writeln!(f, "  topic         {}", t.name)?;
            for s in &t.subscriptions {
                let filter = s
                    .filter_policy
                    .as_ref()
                    .map_or("everything".to_string(), |p| format!("filter {p}"));
                writeln!(
                    f,
                    "  subscription  {} -> {} ({filter}, raw delivery off)",
                    t.name, s.queue
                )?;
            }
        }
        for (name, spec) in &self.tables {
            let mut keys = key(&spec.partition_key);
            if let Some(sort) = &spec.sort_key {
                keys = format!("{keys}, {}", key(sort));
            }
            write!(f, "  table         {name} ({keys}; on-demand")?;
            for index in spec.indexes {
                write!(f, "; index {}: {}", index.name, key(&index.partition_key))?;
            }
            if let Some(ttl) = spec.ttl_attribute {
                write!(f, "; TTL on {ttl}")?;
            }
            writeln!(f, ")")?;
        }
        let skipped = if self.create_collection {
            ""
        } else {
            ", skipped: --skip-collection"
        };
        writeln!(
            f,
            "  collection    {} (Rekognition{skipped})",
            self.collection
        )?;
        match &self.sign_in {
            Some(sign_in) => {
                let function = &sign_in.function;
                writeln!(
                    f,
                    "  function      {} (provided.al2023, runs {} verifier --lambda; {} settings)",
                    function.name,
                    function.binary.display(),
                    function.environment.len()
                )?;
                writeln!(
                    f,
                    "  user pool     {} (Define/Create/Verify auth challenge and PreSignUp: {})",
                    sign_in.pool.name, function.name
                )?;
                writeln!(
                    f,
                    "  app client    {} (no secret; CUSTOM_AUTH, USER_SRP_AUTH, REFRESH_TOKEN_AUTH)",
                    sign_in.pool.app_client
                )
            }
            None => writeln!(
                f,
                "  user pool     not provisioned here (on AWS: deploy/aws/facegate.yaml)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_know_who_sends_to_them() {
        let plan = Plan::new(&StackSettings::with_prefix("demo".parse().unwrap()), true);
        let senders = |queue| {
            plan.queues
                .iter()
                .find(|q| q.queue == queue)
                .unwrap()
                .senders
                .clone()
        };
        assert_eq!(
            senders(Queue::Uploads),
            vec![Sender::Bucket("demo-photos".into())]
        );
        assert_eq!(
            senders(Queue::Dedup),
            vec![Sender::Topic("demo-pipeline".into())]
        );
        assert_eq!(
            senders(Queue::Alerts),
            vec![Sender::Topic("demo-auth-events".into())]
        );
    }

    #[test]
    fn the_printed_plan_names_every_resource() {
        let plan = Plan::new(&StackSettings::with_prefix("demo".parse().unwrap()), false);
        let text = plan.to_string();
        for name in [
            "demo-photos",
            "demo-uploads-dlq",
            "demo-alerts",
            "demo-security-alerts",
            "demo-processed-messages",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.contains(r#"filter {"result":["failure"]}"#), "{text}");
        assert!(text.contains("index by-face: face_id S"), "{text}");
        assert!(text.contains("demo-faces (Rekognition, skipped"), "{text}");
    }
}
