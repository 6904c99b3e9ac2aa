//! The foundation, end to end against the real emulator with the real `facegate` binary:
//! provisioning is idempotent, registration uploads arrive decoded, and a message that keeps
//! failing ends in its dead-letter queue.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{TestStack, eventually};
use facegate_shared::config::{Queue, Table, Topic};
use facegate_shared::events::S3Notification;
use facegate_shared::ids::UploadId;
use facegate_shared::objects::RegistrationUpload;

/// Every attribute, policy and subscription of the stack, as text, for before/after comparison.
async fn snapshot(stack: &TestStack) -> BTreeMap<String, String> {
    let clients = &stack.clients;
    let names = &stack.names;
    let mut snapshot = BTreeMap::new();
    for queue in Queue::ALL {
        for name in [names.queue(queue), names.dlq(queue)] {
            let attributes: BTreeMap<String, String> = clients
                .sqs
                .get_queue_attributes()
                .queue_url(stack.queue_url(&name).await)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .expect("GetQueueAttributes")
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect();
            snapshot.insert(format!("queue {name}"), format!("{attributes:#?}"));
        }
    }
    // Paginated: the shared emulator holds many stacks' topics.
    let topics: Vec<_> = clients
        .sns
        .list_topics()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListTopics");
    for topic in Topic::ALL {
        let name = names.topic(topic);
        let arn = topics
            .iter()
            .filter_map(|t| t.topic_arn.clone())
            .find(|arn| arn.ends_with(&format!(":{name}")))
            .unwrap_or_else(|| panic!("topic {name} exists"));
        let attributes: BTreeMap<_, _> = clients
            .sns
            .get_topic_attributes()
            .topic_arn(&arn)
            .send()
            .await
            .expect("GetTopicAttributes")
            .attributes
            .unwrap_or_default()
            .into_iter()
            .collect();
        snapshot.insert(format!("topic {name}"), format!("{attributes:#?}"));
        let subscriptions = clients
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&arn)
            .send()
            .await
            .expect("ListSubscriptionsByTopic")
            .subscriptions
            .unwrap_or_default();
        for subscription in subscriptions {
            let sub_arn = subscription.subscription_arn.expect("a subscription ARN");
            let attributes: BTreeMap<_, _> = clients
                .sns
                .get_subscription_attributes()
                .subscription_arn(&sub_arn)
                .send()
                .await
                .expect("GetSubscriptionAttributes")
                .attributes
                .unwrap_or_default()
                .into_iter()
                .collect();
            snapshot.insert(
                format!("subscription {sub_arn}"),
                format!("{attributes:#?}"),
            );
        }
    }
    let bucket = names.bucket();
    let notification = clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .expect("GetBucketNotificationConfiguration");
    snapshot.insert(
        format!("notification {bucket}"),
        format!(
            "{:#?} {:?} {:?}",
            notification.queue_configurations,
            notification.topic_configurations,
            notification.lambda_function_configurations
        ),
    );
    let lifecycle = clients
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .expect("GetBucketLifecycleConfiguration");
    snapshot.insert(
        format!("lifecycle {bucket}"),
        format!("{:#?}", lifecycle.rules),
    );
    for table in Table::ALL {
        let name = names.table(table);
        let description = clients
            .dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .expect("DescribeTable")
            .table;
        let ttl = clients
            .dynamodb
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .expect("DescribeTimeToLive")
            .time_to_live_description;
        snapshot.insert(
            format!("table {name}"),
            format!("{description:#?}\n{ttl:#?}"),
        );
    }
    snapshot
}

#[tokio::test]
async fn provisioning_twice_changes_nothing() {
    let stack = TestStack::new().await;
    let first = stack.provision().await;
    assert!(
        first.lines().any(|l| l.starts_with("created")),
        "first run created nothing:\n{first}"
    );
    let before = snapshot(&stack).await;

    // The design, as provisioned: spot-check the settings other roles rely on.
    let uploads = &before[&format!("queue {}", stack.names.queue(Queue::Uploads))];
    assert!(
        uploads.contains(r#"maxReceiveCount"#)
            && uploads.contains(&stack.names.dlq(Queue::Uploads)),
        "{uploads}"
    );
    assert!(
        uploads.contains("s3.amazonaws.com") && uploads.contains(stack.names.bucket()),
        "{uploads}"
    );
    let dedup = &before[&format!("queue {}", stack.names.queue(Queue::Dedup))];
    assert!(
        dedup.contains("sns.amazonaws.com") && dedup.contains(&stack.names.topic(Topic::Pipeline)),
        "{dedup}"
    );
    let filters: Vec<_> = before
        .iter()
        .filter(|(k, v)| k.starts_with("subscription") && v.contains("FilterPolicy"))
        .collect();
    assert_eq!(
        filters.len(),
        1,
        "only auth-events -> alerts filters: {filters:?}"
    );
    assert!(
        filters[0].1.contains("failure")
            && filters[0].1.contains(&stack.names.queue(Queue::Alerts))
    );
    assert_eq!(
        before
            .keys()
            .filter(|k| k.starts_with("subscription"))
            .count(),
        2
    );
    let failures = &before[&format!("table {}", stack.names.table(Table::AuthFailures))];
    assert!(
        failures.contains("expires_at") && failures.contains("Enabled"),
        "{failures}"
    );
    assert!(
        before[&format!("table {}", stack.names.table(Table::Registrations))].contains("by-face")
    );
    assert!(before[&format!("lifecycle {}", stack.names.bucket())].contains("signin/"));

    let second = stack.provision().await;
    let after = snapshot(&stack).await;
    for (resource, state) in &before {
        assert_eq!(
            Some(state),
            after.get(resource),
            "{resource} changed on the second run"
        );
    }
    assert_eq!(
        before.len(),
        after.len(),
        "resources appeared on the second run"
    );
    let resource_lines: Vec<&str> = second
        .lines()
        .filter(|l| !l.starts_with("provisioned"))
        .collect();
    assert!(
        resource_lines.len() >= 19,
        "one line per resource:\n{second}"
    );
    for line in &resource_lines {
        assert!(
            line.starts_with("unchanged") || line.starts_with("skipped"),
            "second run changed something: {line}"
        );
    }
    assert!(second.contains("0 created, 0 updated"), "{second}");
}

#[tokio::test]
async fn registration_uploads_arrive_with_their_keys_decoded() {
    let stack = TestStack::new().await;
    stack.provision().await;
    let upload_id = UploadId::random();
    let key = format!("registrations/zoë user/{upload_id}.jpg");
    stack
        .clients
        .s3
        .put_object()
        .bucket(stack.names.bucket())
        .key(&key)
        .content_type("image/jpeg")
        .body(
            std::fs::read("tests/fixtures/faces/obama_1.jpg")
                .expect("a fixture photo")
                .into(),
        )
        .send()
        .await
        .expect("PutObject");

    let uploads = stack.queue_url(&stack.names.queue(Queue::Uploads)).await;
    let (body, upload) = eventually(
        "the object event on the uploads queue",
        Duration::from_secs(10),
        || async {
            for message in stack.receive_once(&uploads, None).await {
                stack.delete(&uploads, &message).await;
                let body = message.body().unwrap_or_default().to_string();
                let notification = S3Notification::parse(&body).expect("an S3 notification");
                // Saving the notification configuration made S3 send a test event first: skip it.
                if let Some(object) = notification
                    .objects()
                    .expect("decodable records")
                    .into_iter()
                    .next()
                {
                    assert!(object.is_object_created());
                    assert_eq!(object.bucket, stack.names.bucket());
                    return Some((
                        body,
                        RegistrationUpload::parse_key(&object.key).expect("a registration key"),
                    ));
                }
            }
            None
        },
    )
    .await;
    assert_eq!(upload.user_id.as_str(), "zoë user");
    assert_eq!(upload.upload_id, upload_id);
    assert_eq!(upload.key(), key);
    // On the wire the key was form-URL-encoded, as S3 does it.
    assert!(body.contains("registrations/zo%C3%AB+user/"), "{body}");
    if std::env::var_os("FACEGATE_UPDATE_FIXTURES").is_some() {
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
        .unwrap();
        std::fs::write(
            "shared/tests/fixtures/s3-event-ministack.json",
            pretty + "\n",
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_message_received_max_receive_count_times_lands_in_the_dlq() {
    let stack = TestStack::new().await;
    stack.provision().await;
    let queue = stack.queue_url(&stack.names.queue(Queue::Dedup)).await;
    let dlq = stack.queue_url(&stack.names.dlq(Queue::Dedup)).await;
    let redrive = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
        .expect("a redrive policy");
    let redrive: serde_json::Value = serde_json::from_str(&redrive).expect("JSON redrive policy");
    let max_receive_count: u32 = redrive["maxReceiveCount"]
        .to_string()
        .trim_matches('"')
        .parse()
        .expect("a count");
    assert_eq!(max_receive_count, 5, "the default");

    let marker = format!("poison-{}", uuid::Uuid::new_v4());
    stack
        .clients
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(&marker)
        .send()
        .await
        .expect("SendMessage");

    // A worker that fails every time: receive, never delete. Visibility 0 makes the message
    // visible again at once instead of after the queue's 60 s.
    for attempt in 1..=max_receive_count {
        let message = eventually(
            &format!("receive #{attempt}"),
            Duration::from_secs(5),
            || async {
                stack
                    .receive_once(&queue, Some(0))
                    .await
                    .into_iter()
                    .find(|m| m.body() == Some(marker.as_str()))
            },
        )
        .await;
        let count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
        assert_eq!(
            count.map(String::as_str),
            Some(attempt.to_string().as_str())
        );
    }

    // The next receive finds it gone from the queue and in the dead-letter queue.
    let moved = eventually(
        "the message in the DLQ",
        Duration::from_secs(10),
        || async {
            let again = stack.receive_once(&queue, Some(0)).await;
            assert!(
                !again.iter().any(|m| m.body() == Some(marker.as_str())),
                "received more than maxReceiveCount ({max_receive_count}) times"
            );
            stack
                .receive_once(&dlq, None)
                .await
                .into_iter()
                .find(|m| m.body() == Some(marker.as_str()))
        },
    )
    .await;
    stack.delete(&dlq, &moved).await;
}
