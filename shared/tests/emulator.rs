//! The wire types against the real emulator (ministack on 127.0.0.1:4566, `scripts/stack.sh
//! start`): a stack provisioned by the library, events published through its real topics and
//! read back from its real queues.
//!
//! Each test uses its own prefix (`fg-shared-<uuid8>`), so it never disturbs other stacks on
//! the same emulator. With `FACEGATE_UPDATE_FIXTURES=1` the bodies received are saved to
//! `tests/fixtures/*-ministack.json`, which the unit tests read.

use std::time::Duration;

use aws_sdk_sqs::types::Message;
use facegate_shared::aws::{AwsClients, AwsSettings};
use facegate_shared::config::{Prefix, Queue, StackSettings, Topic};
use facegate_shared::events::{
    AlertKind, AlertSubject, AuthChannel, AuthEvent, AuthFailureReason, AuthOutcome, FaceIndexed,
    Notification, S3Notification, SecurityAlert, Severity, publish,
};
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::objects::RegistrationUpload;
use facegate_shared::provision::{self, Change, Plan};

struct Stack {
    settings: StackSettings,
    clients: AwsClients,
    aws: AwsSettings,
}

async fn stack() -> Stack {
    let prefix: Prefix = format!(
        "fg-shared-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .parse()
    .unwrap();
    let aws = AwsSettings {
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
        ..AwsSettings::local()
    };
    Stack {
        settings: StackSettings::with_prefix(prefix),
        clients: aws.clients().await,
        aws,
    }
}

impl Stack {
    async fn provision(&self) -> provision::Report {
        let plan = Plan::new(&self.settings, false);
        provision::apply(&plan, &self.aws)
            .await
            .expect("provisioning against the emulator (is it running? scripts/stack.sh start)")
    }

    async fn queue_url(&self, name: &str) -> String {
        self.clients
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap()
    }

    async fn topic_arn(&self, topic: Topic) -> String {
        // CreateTopic on an existing topic returns its ARN.
        let name = self.settings.names().topic(topic);
        self.clients
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap()
    }

    /// Receives (and deletes) messages until `count` arrived or `within` passed.
    async fn receive(&self, queue_url: &str, count: usize, within: Duration) -> Vec<Message> {
        let deadline = tokio::time::Instant::now() + within;
        let mut received = Vec::new();
        while received.len() < count && tokio::time::Instant::now() < deadline {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in out.messages.unwrap_or_default() {
                let handle = message.receipt_handle.clone().unwrap();
                self.clients
                    .sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
                received.push(message);
            }
        }
        received
    }
}

fn save_fixture(name: &str, body: &str) {
    if std::env::var_os("FACEGATE_UPDATE_FIXTURES").is_some() {
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(body).unwrap())
                .unwrap();
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(&path, pretty + "\n").unwrap();
    }
}

fn auth_event(outcome: AuthOutcome) -> AuthEvent {
    AuthEvent {
        event_id: uuid::Uuid::new_v4(),
        user_id: UserId::parse("zoë user").unwrap(),
        outcome,
        similarity: Some(12.5),
        source: Some("203.0.113.7".parse().unwrap()),
        device: None,
        channel: AuthChannel::Cognito,
        challenge_id: None,
        time: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn provisioning_twice_changes_nothing() {
    let stack = stack().await;
    let first = stack.provision().await;
    assert!(first.outcomes.iter().any(|o| o.change == Change::Created));
    let second = stack.provision().await;
    let changed: Vec<_> = second
        .outcomes
        .iter()
        .filter(|o| !matches!(o.change, Change::Unchanged | Change::Skipped(_)))
        .collect();
    assert!(changed.is_empty(), "second run changed {changed:?}");
    assert_eq!(first.outcomes.len(), second.outcomes.len());
}

#[tokio::test]
async fn only_failed_sign_ins_reach_the_alerts_queue() {
    let stack = stack().await;
    stack.provision().await;
    let topic = stack.topic_arn(Topic::AuthEvents).await;
    let alerts = stack
        .queue_url(&stack.settings.names().queue(Queue::Alerts))
        .await;

    let success = auth_event(AuthOutcome::Success);
    let failure = auth_event(AuthOutcome::Failure {
        reason: AuthFailureReason::NoMatch,
    });
    publish(&stack.clients.sns, &topic, &success).await.unwrap();
    publish(&stack.clients.sns, &topic, &failure).await.unwrap();

    // Wait for both to have had their chance: two messages would mean the filter let one through.
    let received = stack.receive(&alerts, 2, Duration::from_secs(3)).await;
    assert_eq!(
        received.len(),
        1,
        "only the failure passes the filter policy"
    );
    let body = received[0].body().unwrap();
    let note = Notification::<AuthEvent>::parse(body).unwrap();
    assert_eq!(note.event, failure);
    assert_eq!(note.attribute("result"), Some("failure"));
    save_fixture("sns-auth-event-ministack.json", body);
}

#[tokio::test]
async fn face_indexed_reaches_dedup_in_its_envelope() {
    let stack = stack().await;
    stack.provision().await;
    let names = stack.settings.names();
    let event = FaceIndexed {
        user_id: UserId::parse("zoë user").unwrap(),
        upload_id: UploadId::random(),
        face_id: uuid::Uuid::new_v4().to_string(),
        collection_id: "facegate-faces".into(),
        bucket: names.bucket().into(),
        key: "registrations/zoë user/x.jpg".into(),
        indexed_at: chrono::Utc::now(),
    };
    publish(
        &stack.clients.sns,
        &stack.topic_arn(Topic::Pipeline).await,
        &event,
    )
    .await
    .unwrap();
    let received = stack
        .receive(
            &stack.queue_url(&names.queue(Queue::Dedup)).await,
            1,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(received.len(), 1);
    let body = received[0].body().unwrap();
    assert_eq!(
        Notification::<FaceIndexed>::parse(body).unwrap().event,
        event
    );
    save_fixture("sns-face-indexed-ministack.json", body);
}

#[tokio::test]
async fn security_alerts_carry_kind_and_severity_for_subscribers() {
    let stack = stack().await;
    stack.provision().await;
    // A security-ops queue, subscribed with a filter on severity, as ops would do it.
    let sqs = &stack.clients.sqs;
    let ops_name = format!("{}-ops", stack.settings.prefix);
    let ops_url = sqs
        .create_queue()
        .queue_name(&ops_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let ops_arn = sqs
        .get_queue_attributes()
        .queue_url(&ops_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let topic = stack.topic_arn(Topic::SecurityAlerts).await;
    stack
        .clients
        .sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&ops_arn)
        .attributes("FilterPolicy", r#"{"severity": ["high", "critical"]}"#)
        .send()
        .await
        .unwrap();

    let alert = |severity| SecurityAlert {
        alert_id: format!("lockout:zoë user:{}", uuid::Uuid::new_v4()),
        kind: AlertKind::Lockout,
        severity,
        subject: AlertSubject::User(UserId::parse("zoë user").unwrap()),
        summary: "user locked after 3 failed sign-ins in 5 minutes".into(),
        details: serde_json::Map::from_iter([("failures".to_string(), 3.into())]),
        time: chrono::Utc::now(),
    };
    let high = alert(Severity::High);
    publish(&stack.clients.sns, &topic, &alert(Severity::Low))
        .await
        .unwrap();
    publish(&stack.clients.sns, &topic, &high).await.unwrap();
    let received = stack.receive(&ops_url, 2, Duration::from_secs(3)).await;
    assert_eq!(received.len(), 1, "the low-severity alert is filtered out");
    let body = received[0].body().unwrap();
    let note = Notification::<SecurityAlert>::parse(body).unwrap();
    assert_eq!(note.event, high);
    assert_eq!(note.attribute("kind"), Some("lockout"));
    assert_eq!(note.attribute("severity"), Some("high"));
    save_fixture("sns-security-alert-ministack.json", body);
}

#[tokio::test]
async fn uploads_queue_gets_the_test_event_then_decodable_object_events() {
    let stack = stack().await;
    stack.provision().await;
    let names = stack.settings.names();
    let uploads = stack.queue_url(&names.queue(Queue::Uploads)).await;
    let upload = RegistrationUpload::parse_key(&format!(
        "registrations/zoë user/{}.jpg",
        UploadId::random()
    ))
    .unwrap();
    stack
        .clients
        .s3
        .put_object()
        .bucket(names.bucket())
        .key(upload.key())
        .body(b"not really a jpeg".to_vec().into())
        .send()
        .await
        .unwrap();
    // The test event (sent when provisioning saved the notification) and the object event.
    let received = stack.receive(&uploads, 2, Duration::from_secs(5)).await;
    let mut parsed = Vec::new();
    for message in &received {
        let body = message.body().unwrap();
        match S3Notification::parse(body).unwrap() {
            S3Notification::Test(_) => save_fixture("s3-test-event-ministack.json", body),
            records => {
                save_fixture("s3-event-ministack.json", body);
                parsed.extend(records.objects().unwrap());
            }
        }
    }
    assert_eq!(parsed.len(), 1, "one object event among {received:?}");
    assert_eq!(
        RegistrationUpload::parse_key(&parsed[0].key).unwrap(),
        upload
    );
}
