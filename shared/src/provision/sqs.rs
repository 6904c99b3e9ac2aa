//! Queues: each dead-letter queue, then its work queue with the redrive policy and an access
//! policy letting its senders (the bucket, the topics) in.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName as Attr;
use serde_json::json;

use super::plan::{Plan, QueuePlan, Sender};
use super::{Change, ProvisionError, Report, aws_error, same_setting};
use crate::config::DLQ_RETENTION_SECS;

/// Ensures every queue; returns the ARN of each, by name.
pub(super) async fn ensure_queues(
    sqs: &aws_sdk_sqs::Client,
    plan: &Plan,
    topic_arns: &HashMap<String, String>,
    report: &mut Report,
) -> Result<HashMap<String, String>, ProvisionError> {
    let mut arns = HashMap::new();
    for queue in &plan.queues {
        let dlq_settings =
            HashMap::from([(Attr::MessageRetentionPeriod, DLQ_RETENTION_SECS.to_string())]);
        let (dlq_arn, change) = ensure_queue(sqs, &queue.dlq, dlq_settings).await?;
        report.record("queue", &queue.dlq, change);
        let settings = work_queue_settings(queue, &dlq_arn, topic_arns)?;
        let (arn, change) = ensure_queue(sqs, &queue.name, settings).await?;
        report.record("queue", &queue.name, change);
        arns.insert(queue.dlq.clone(), dlq_arn);
        arns.insert(queue.name.clone(), arn);
    }
    Ok(arns)
}

/// The attributes of a work queue. Its ARN is its DLQ's with the name swapped: same account,
/// same region, and known before the queue exists, so the policy goes in with `CreateQueue`.
fn work_queue_settings(
    queue: &QueuePlan,
    dlq_arn: &str,
    topic_arns: &HashMap<String, String>,
) -> Result<HashMap<Attr, String>, ProvisionError> {
    let arn = match dlq_arn.rsplit_once(':') {
        Some((account_part, _)) => format!("{account_part}:{}", queue.name),
        None => {
            return Err(ProvisionError::Drift {
                resource: format!("queue {}", queue.dlq),
                detail: format!("unexpected ARN {dlq_arn}"),
            });
        }
    };
    let statements = queue
        .senders
        .iter()
        .enumerate()
        .map(|(i, sender)| {
            let (sid, service, source_arn) = match sender {
                Sender::Bucket(name) => (
                    "AllowBucketNotifications",
                    "s3.amazonaws.com",
                    format!("arn:aws:s3:::{name}"),
                ),
                Sender::Topic(name) => {
                    let topic_arn = topic_arns.get(name).cloned().ok_or_else(|| {
                        ProvisionError::Incomplete {
                            call: "CreateTopic",
                            resource: format!("topic {name}"),
                            what: "topic ARN",
                        }
                    })?;
                    ("AllowTopicDelivery", "sns.amazonaws.com", topic_arn)
                }
            };
            Ok(json!({
                "Sid": format!("{sid}{i}"),
                "Effect": "Allow",
                "Principal": { "Service": service },
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": source_arn } }
            }))
        })
        .collect::<Result<Vec<_>, ProvisionError>>()?;
    let mut settings = HashMap::from([
        (
            Attr::VisibilityTimeout,
            queue.visibility_timeout_secs.to_string(),
        ),
        (
            Attr::MessageRetentionPeriod,
            queue.message_retention_secs.to_string(),
        ),
        (
            Attr::ReceiveMessageWaitTimeSeconds,
            queue.receive_wait_secs.to_string(),
        ),
        (
            Attr::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count })
                .to_string(),
        ),
    ]);
    if !statements.is_empty() {
        let policy = json!({ "Version": "2012-10-17", "Id": format!("{arn}/policy"), "Statement": statements });
        settings.insert(Attr::Policy, policy.to_string());
    }
    Ok(settings)
}

/// Creates `name` with `settings`, or brings an existing queue's differing settings in line.
/// Returns the queue's ARN.
async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    settings: HashMap<Attr, String>,
) -> Result<(String, Change), ProvisionError> {
    let resource = format!("queue {name}");
    let existing = match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist()) =>
        {
            None
        }
        Err(e) => return Err(aws_error("GetQueueUrl", &resource)(e)),
    };
    let (url, change) = match existing {
        None => {
            let out = sqs
                .create_queue()
                .queue_name(name)
                .set_attributes(Some(settings))
                .send()
                .await
                .map_err(aws_error("CreateQueue", &resource))?;
            let url = out.queue_url.ok_or_else(|| ProvisionError::Incomplete {
                call: "CreateQueue",
                resource: resource.clone(),
                what: "queue URL",
            })?;
            (url, Change::Created)
        }
        Some(url) => {
            let actual = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(Attr::All)
                .send()
                .await
                .map_err(aws_error("GetQueueAttributes", &resource))?
                .attributes
                .unwrap_or_default();
            let differing: HashMap<Attr, String> = settings
                .into_iter()
                .filter(|(attr, desired)| {
                    !same_setting(actual.get(attr).map(String::as_str), desired)
                })
                .collect();
            if differing.is_empty() {
                (url, Change::Unchanged)
            } else {
                let mut names: Vec<String> =
                    differing.keys().map(|a| a.as_str().to_string()).collect();
                names.sort();
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(differing))
                    .send()
                    .await
                    .map_err(aws_error("SetQueueAttributes", &resource))?;
                (url, Change::Updated(names))
            }
        }
    };
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(Attr::QueueArn)
        .send()
        .await
        .map_err(aws_error("GetQueueAttributes", &resource))?
        .attributes
        .and_then(|mut a| a.remove(&Attr::QueueArn))
        .ok_or_else(|| ProvisionError::Incomplete {
            call: "GetQueueAttributes",
            resource,
            what: "QueueArn",
        })?;
    Ok((arn, change))
}
