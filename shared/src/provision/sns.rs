//! Topics, and the SQS subscriptions that carry them into the work queues.

use std::collections::HashMap;

use super::plan::{Plan, SubscriptionPlan};
use super::{Change, ProvisionError, Report, aws_error};

/// SNS's attribute names on a subscription.
const FILTER_POLICY: &str = "FilterPolicy";
const RAW_MESSAGE_DELIVERY: &str = "RawMessageDelivery";

/// Ensures every topic; returns each topic's ARN by name.
pub(super) async fn ensure_topics(
    sns: &aws_sdk_sns::Client,
    plan: &Plan,
    report: &mut Report,
) -> Result<HashMap<String, String>, ProvisionError> {
    // CreateTopic is idempotent, but cannot say whether it created anything: look first.
    let mut existing: HashMap<String, String> = HashMap::new();
    let mut pages = sns.list_topics().into_paginator().items().send();
    while let Some(topic) = pages.next().await {
        let topic = topic.map_err(aws_error("ListTopics", "topics"))?;
        if let Some(arn) = topic.topic_arn {
            let name = arn.rsplit(':').next().unwrap_or_default().to_string();
            existing.insert(name, arn);
        }
    }
    let mut arns = HashMap::new();
    for topic in &plan.topics {
        let (arn, change) = match existing.get(&topic.name) {
            Some(arn) => (arn.clone(), Change::Unchanged),
            None => {
                let resource = format!("topic {}", topic.name);
                let out = sns
                    .create_topic()
                    .name(&topic.name)
                    .send()
                    .await
                    .map_err(aws_error("CreateTopic", &resource))?;
                let arn = out.topic_arn.ok_or(ProvisionError::Incomplete {
                    call: "CreateTopic",
                    resource,
                    what: "topic ARN",
                })?;
                (arn, Change::Created)
            }
        };
        report.record("topic", &topic.name, change);
        arns.insert(topic.name.clone(), arn);
    }
    Ok(arns)
}

/// Ensures every subscription, with its filter policy and raw delivery off.
pub(super) async fn ensure_subscriptions(
    sns: &aws_sdk_sns::Client,
    plan: &Plan,
    topic_arns: &HashMap<String, String>,
    queue_arns: &HashMap<String, String>,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    for topic in &plan.topics {
        for subscription in &topic.subscriptions {
            let name = format!("{} -> {}", topic.name, subscription.queue);
            let resource = format!("subscription {name}");
            let missing = |what| ProvisionError::Incomplete {
                call: "provision",
                resource: resource.clone(),
                what,
            };
            let topic_arn = topic_arns
                .get(&topic.name)
                .ok_or_else(|| missing("topic ARN"))?;
            let queue_arn = queue_arns
                .get(&subscription.queue)
                .ok_or_else(|| missing("queue ARN"))?;
            let change =
                ensure_subscription(sns, topic_arn, queue_arn, subscription, &resource).await?;
            report.record("subscription", name, change);
        }
    }
    Ok(())
}

async fn ensure_subscription(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue_arn: &str,
    plan: &SubscriptionPlan,
    resource: &str,
) -> Result<Change, ProvisionError> {
    let desired = HashMap::from([
        (
            FILTER_POLICY.to_string(),
            plan.filter_policy
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
        (RAW_MESSAGE_DELIVERY.to_string(), "false".to_string()),
    ]);
    let mut existing = None;
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .items()
        .send();
    while let Some(subscription) = pages.next().await {
        let subscription = subscription.map_err(aws_error("ListSubscriptionsByTopic", resource))?;
        if subscription.protocol.as_deref() == Some("sqs")
            && subscription.endpoint.as_deref() == Some(queue_arn)
        {
            existing = subscription.subscription_arn;
            break;
        }
    }
    let Some(subscription_arn) = existing else {
        // An empty FilterPolicy is not a valid policy: only send the ones that are set.
        let attributes = desired.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .set_attributes(Some(attributes))
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(aws_error("Subscribe", resource))?;
        return Ok(Change::Created);
    };
    let actual = sns
        .get_subscription_attributes()
        .subscription_arn(&subscription_arn)
        .send()
        .await
        .map_err(aws_error("GetSubscriptionAttributes", resource))?
        .attributes
        .unwrap_or_default();
    let mut updated = Vec::new();
    for (name, desired) in desired {
        let actual = actual.get(&name).map(String::as_str);
        let same = match name.as_str() {
            // No policy, an empty one and `{}` all let everything through.
            FILTER_POLICY => same_filter(actual, &desired),
            _ => actual.unwrap_or("false") == desired,
        };
        if same {
            continue;
        }
        // Removing a filter policy is done by setting it to `{}`.
        let value = if name == FILTER_POLICY && desired.is_empty() {
            "{}".to_string()
        } else {
            desired
        };
        sns.set_subscription_attributes()
            .subscription_arn(&subscription_arn)
            .attribute_name(&name)
            .attribute_value(value)
            .send()
            .await
            .map_err(aws_error("SetSubscriptionAttributes", resource))?;
        updated.push(name);
    }
    Ok(if updated.is_empty() {
        Change::Unchanged
    } else {
        Change::Updated(updated)
    })
}

fn same_filter(actual: Option<&str>, desired: &str) -> bool {
    let parse = |policy: Option<&str>| -> Option<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_str(policy?).ok()?;
        (value != serde_json::json!({})).then_some(value)
    };
    parse(actual) == parse(Some(desired))
}

#[cfg(test)]
mod tests {
    use super::same_filter;

    #[test]
    fn filter_policies_compare_as_json() {
        assert!(same_filter(
            Some(r#"{ "result": ["failure"] }"#),
            r#"{"result":["failure"]}"#
        ));
        assert!(same_filter(None, ""));
        assert!(same_filter(Some("{}"), ""));
        assert!(same_filter(Some(""), ""));
        assert!(!same_filter(None, r#"{"result":["failure"]}"#));
        assert!(!same_filter(
            Some(r#"{"result":["success"]}"#),
            r#"{"result":["failure"]}"#
        ));
    }
}
