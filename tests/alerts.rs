//! The failure-alert worker against the real emulator: failed `AuthEvent`s arrive on the
//! `alerts` queue through the `auth-events` subscription (failures only), are counted once per
//! message in sliding windows, lock the user at the threshold, raise `lockout` and
//! `repeated-failure` alerts once each with their `kind`/`severity` attributes, and put
//! CloudWatch metrics. A message in a dead-letter queue raises a `dead-letter` alert.
//! Failed liveness checks time out their device and source address.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::signin::SignIn;
use facegate_shared::config::{Queue, Table, Topic};
use facegate_shared::events::Origin;
use facegate_shared::events::{
    self, AlertKind, AlertSubject, AuthChannel, AuthEvent, AuthFailureReason, AuthOutcome,
    SecurityAlert, Severity,
};
use facegate_shared::ids::{DeviceId, UserId};
use facegate_shared::stack::Stack;
use facegate_shared::tables::{auth_failures, users};
use facegate_workers::alerts::AlertsSettings;
use serde_json::json;

const SOURCE: &str = "203.0.113.9";

fn failure(user: &str) -> AuthEvent {
    AuthEvent {
        event_id: uuid::Uuid::new_v4(),
        user_id: UserId::parse(user).unwrap(),
        outcome: AuthOutcome::Failure {
            reason: AuthFailureReason::NoMatch,
        },
        similarity: Some(7.5),
        source: Some(SOURCE.parse().unwrap()),
        device: None,
        channel: AuthChannel::Cognito,
        challenge_id: None,
        time: Utc::now(),
    }
}

/// The SNS envelope SNS would put on the queue for `event` (raw delivery off), with a fixed
/// message id: what a redelivery looks like.
fn envelope(stack: &Stack, message_id: &str, event: &AuthEvent) -> String {
    json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": stack.topic_arn(Topic::AuthEvents),
        "Message": serde_json::to_string(event).unwrap(),
        "Timestamp": "2026-11-21T12:56:09.000Z",
        "SignatureVersion": "1",
        "Signature": "FAKE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-fake.pem",
        "UnsubscribeURL": "http://localhost:4566/?Action=Unsubscribe",
        "MessageAttributes": { "result": { "Type": "String", "Value": "failure" } },
    })
    .to_string()
}

async fn failures_counted(stack: &Stack, subject: &str) -> i64 {
    let items = stack
        .clients
        .dynamodb
        .query()
        .table_name(stack.table(Table::AuthFailures))
        .key_condition_expression("#s = :s")
        .expression_attribute_names("#s", auth_failures::SUBJECT)
        .expression_attribute_values(":s", AttributeValue::S(subject.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .map(|i| {
            i[auth_failures::FAILURES]
                .as_n()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_once_lock_the_user_and_raise_alerts_once() {
    let env = SignIn::start().await;
    let stack = env.pipeline.stack().clone();
    let security_ops = env.subscribe(Topic::SecurityAlerts, "security-ops").await;
    env.register("erin", "grace_hopper_1.jpg").await;
    let _alerts = env.run_alerts(AlertsSettings {
        lockout_threshold: 3,
        lockout_secs: 300,
        source_alert_threshold: 2,
        dlq_check_secs: 1,
        ..AlertsSettings::default()
    });
    let alerts_queue = stack.queue_url(Queue::Alerts).to_string();
    let idle = || async {
        let (visible, in_flight) = env.pipeline.depth(&alerts_queue).await;
        (visible + in_flight == 0).then_some(())
    };

    // The same SNS message delivered twice is counted once.
    let first = failure("erin");
    let body = envelope(&stack, &uuid::Uuid::new_v4().to_string(), &first);
    for _ in 0..2 {
        stack
            .clients
            .sqs
            .send_message()
            .queue_url(&alerts_queue)
            .message_body(&body)
            .send()
            .await
            .unwrap();
    }
    common::eventually("one failure counted", Duration::from_secs(30), || async {
        (failures_counted(&stack, "user#erin").await == 1).then_some(())
    })
    .await;
    common::eventually("both deliveries handled", Duration::from_secs(30), idle).await;
    assert_eq!(
        failures_counted(&stack, "user#erin").await,
        1,
        "a redelivery adds nothing"
    );
    assert_eq!(
        failures_counted(&stack, &format!("source#{SOURCE}")).await,
        1
    );

    // The same failure published twice is counted once too: a Publish whose answer was lost
    // (the emulator restarting, the verifier killed after SNS took it) is made again, and SNS
    // delivers two messages, with two message ids, carrying one event.
    let topic = stack.topic_arn(Topic::AuthEvents).to_string();
    events::publish(&stack.clients.sns, &topic, &first)
        .await
        .unwrap();
    common::eventually("the second publish handled", Duration::from_secs(30), idle).await;
    assert_eq!(
        failures_counted(&stack, "user#erin").await,
        1,
        "one failure published twice is one failure"
    );

    // A success published on the topic never reaches the worker (filter policy).
    let success = AuthEvent {
        outcome: AuthOutcome::Success,
        ..failure("erin")
    };
    events::publish(&stack.clients.sns, &topic, &success)
        .await
        .unwrap();
    // Two more failures through SNS: the third failure locks erin.
    for _ in 0..2 {
        events::publish(&stack.clients.sns, &topic, &failure("erin"))
            .await
            .unwrap();
    }
    common::eventually("erin locked", Duration::from_secs(30), || async {
        let item = stack
            .clients
            .dynamodb
            .get_item()
            .table_name(stack.table(Table::Users))
            .key(users::USER_ID, AttributeValue::S("erin".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item?;
        let until: i64 = item.get(users::LOCKED_UNTIL)?.as_n().ok()?.parse().ok()?;
        (until > Utc::now().timestamp()).then_some(())
    })
    .await;
    let defined = env.define("erin", &[]).await;
    assert_eq!(
        defined["response"]["failAuthentication"], true,
        "Define refuses a locked user"
    );

    // One lockout alert (high) and one repeated-failure alert for the source (medium).
    let wanted = |found: &[events::Notification<SecurityAlert>]| {
        found.iter().any(|n| n.event.kind == AlertKind::Lockout)
            && found
                .iter()
                .any(|n| n.event.kind == AlertKind::RepeatedFailure)
    };
    let mut alerts = env
        .collect::<SecurityAlert>(&security_ops, Duration::from_secs(30), wanted)
        .await;
    common::eventually("the queue drained", Duration::from_secs(30), idle).await;
    // Anything raised twice would have arrived by now.
    alerts.extend(
        env.collect::<SecurityAlert>(&security_ops, Duration::from_secs(2), |_| false)
            .await,
    );
    let of = |kind: AlertKind| {
        alerts
            .iter()
            .filter(|n| n.event.kind == kind)
            .collect::<Vec<_>>()
    };
    let lockouts = of(AlertKind::Lockout);
    assert_eq!(lockouts.len(), 1, "{alerts:?}");
    assert_eq!(lockouts[0].attribute("kind"), Some("lockout"));
    assert_eq!(lockouts[0].attribute("severity"), Some("high"));
    assert_eq!(lockouts[0].event.severity, Severity::High);
    assert_eq!(
        lockouts[0].event.subject,
        AlertSubject::User("erin".parse().unwrap())
    );
    assert_eq!(lockouts[0].event.details["failures"], 3);
    let repeated = of(AlertKind::RepeatedFailure);
    assert_eq!(
        repeated.len(),
        1,
        "one alert per source and window: {alerts:?}"
    );
    assert_eq!(repeated[0].attribute("severity"), Some("medium"));
    assert_eq!(
        repeated[0].event.subject,
        AlertSubject::Source(SOURCE.parse().unwrap())
    );
    assert_eq!(
        failures_counted(&stack, "user#erin").await,
        3,
        "the success was not counted"
    );

    // A dead letter raises an alert.
    stack
        .clients
        .sqs
        .send_message()
        .queue_url(stack.dlq_url(Queue::Uploads))
        .message_body("{\"a\": \"message that gave up\"}")
        .send()
        .await
        .unwrap();
    let dead = env
        .collect::<SecurityAlert>(&security_ops, Duration::from_secs(30), |found| {
            found.iter().any(|n| n.event.kind == AlertKind::DeadLetter)
        })
        .await;
    let dead = dead
        .iter()
        .find(|n| n.event.kind == AlertKind::DeadLetter)
        .expect("a dead-letter alert");
    assert_eq!(dead.attribute("kind"), Some("dead-letter"));
    assert_eq!(
        dead.event.subject,
        AlertSubject::Queue(stack.names.dlq(Queue::Uploads))
    );

    // The metrics are in CloudWatch.
    common::eventually("metrics in CloudWatch", Duration::from_secs(30), || async {
        let listed = stack
            .clients
            .cloudwatch
            .list_metrics()
            .namespace("Facegate")
            .send()
            .await
            .ok()?;
        let names: Vec<&str> = listed
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name())
            .collect();
        ["FailedLogins", "Lockouts", "DeadLetters"]
            .iter()
            .all(|n| names.contains(n))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_the_stack_caused_do_not_count_against_the_user() {
    // The face service down or a store unreachable: Verify fails closed (answers false) and
    // publishes why. Those refusals are the stack's, not the person's: a user who tries again
    // through an outage must not be locked out, nor their address alerted on.
    let env = SignIn::start().await;
    let stack = env.pipeline.stack().clone();
    env.register("fred", "biden_1.jpg").await;
    let _alerts = env.run_alerts(AlertsSettings {
        lockout_threshold: 3,
        source_alert_threshold: 2,
        ..AlertsSettings::default()
    });
    let topic = stack.topic_arn(Topic::AuthEvents).to_string();
    let alerts_queue = stack.queue_url(Queue::Alerts).to_string();
    let idle = || async {
        let (visible, in_flight) = env.pipeline.depth(&alerts_queue).await;
        (visible + in_flight == 0).then_some(())
    };
    for reason in [
        AuthFailureReason::FaceServiceError,
        AuthFailureReason::FaceServiceError,
        AuthFailureReason::ServiceError,
        AuthFailureReason::FaceServiceError,
    ] {
        let event = AuthEvent {
            outcome: AuthOutcome::Failure { reason },
            ..failure("fred")
        };
        events::publish(&stack.clients.sns, &topic, &event)
            .await
            .unwrap();
    }
    common::eventually(
        "the outage's refusals handled",
        Duration::from_secs(30),
        idle,
    )
    .await;
    assert_eq!(failures_counted(&stack, "user#fred").await, 0);
    assert_eq!(
        failures_counted(&stack, &format!("source#{SOURCE}")).await,
        0
    );
    let defined = env.define("fred", &[]).await;
    assert_eq!(
        defined["response"]["challengeName"], "CUSTOM_CHALLENGE",
        "fred may still sign in: {defined}"
    );

    // A refusal of the person's own (the face did not match) still counts.
    events::publish(&stack.clients.sns, &topic, &failure("fred"))
        .await
        .unwrap();
    common::eventually("a no-match counted", Duration::from_secs(30), || async {
        (failures_counted(&stack, "user#fred").await == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_liveness_checks_time_out_the_device_and_the_source_once() {
    let env = SignIn::start().await;
    let stack = env.pipeline.stack().clone();
    let security_ops = env.subscribe(Topic::SecurityAlerts, "security-ops").await;
    let _alerts = env.run_alerts(AlertsSettings::default());
    let topic = stack.topic_arn(Topic::AuthEvents).to_string();
    let alerts_queue = stack.queue_url(Queue::Alerts).to_string();
    let device = DeviceId::parse("attacker-phone").unwrap();
    let source: std::net::IpAddr = "198.51.100.23".parse().unwrap();
    let from_the_attacker = |user: &str, reason| AuthEvent {
        outcome: AuthOutcome::Failure { reason },
        source: Some(source),
        device: Some(device.clone()),
        ..failure(user)
    };
    let origins = [Origin::Device(device.clone()), Origin::Source(source)];

    // Failures that are not failed liveness checks count for the users only.
    for user in ["ann", "ben"] {
        let event = from_the_attacker(user, AuthFailureReason::NoMatch);
        events::publish(&stack.clients.sns, &topic, &event)
            .await
            .unwrap();
    }
    // Four failed checks, one per user (no user reaches its own lock), the last one delivered
    // twice: still four.
    let mut last = String::new();
    for (n, user) in ["ann", "ben", "cay", "dot"].into_iter().enumerate() {
        let reason = if n % 2 == 0 {
            AuthFailureReason::LivenessReplayedFrame
        } else {
            AuthFailureReason::LivenessWrongPose
        };
        last = envelope(
            &stack,
            &uuid::Uuid::new_v4().to_string(),
            &from_the_attacker(user, reason),
        );
        let send = stack.clients.sqs.send_message().queue_url(&alerts_queue);
        send.message_body(&last).send().await.unwrap();
    }
    let send = stack.clients.sqs.send_message().queue_url(&alerts_queue);
    send.message_body(&last).send().await.unwrap();
    common::eventually("four checks counted", Duration::from_secs(30), || async {
        let counted = failures_counted(&stack, "liveness-device#attacker-phone").await;
        let (visible, in_flight) = env.pipeline.depth(&alerts_queue).await;
        (counted == 4 && visible + in_flight == 0).then_some(())
    })
    .await;
    assert_eq!(
        failures_counted(&stack, "liveness-source#198.51.100.23").await,
        4
    );
    for origin in &origins {
        assert_eq!(env.timed_out_until(origin).await, None, "{origin}");
    }

    // The fifth times both out, for 30 minutes from the failure.
    let fifth = from_the_attacker("eve", AuthFailureReason::LivenessNotSamePerson);
    events::publish(&stack.clients.sns, &topic, &fifth)
        .await
        .unwrap();
    for origin in &origins {
        let until = common::eventually("timed out", Duration::from_secs(30), || async {
            env.timed_out_until(origin).await
        })
        .await;
        assert_eq!(until, fifth.time.timestamp() + 1800, "{origin}");
    }
    // A sixth while timed out changes nothing and raises nothing new.
    let sixth = from_the_attacker("fay", AuthFailureReason::LivenessWrongPose);
    events::publish(&stack.clients.sns, &topic, &sixth)
        .await
        .unwrap();

    let wanted = |found: &[events::Notification<SecurityAlert>]| {
        found
            .iter()
            .filter(|n| n.event.kind == AlertKind::LivenessTimeout)
            .count()
            >= 2
    };
    let mut alerts = env
        .collect::<SecurityAlert>(&security_ops, Duration::from_secs(30), wanted)
        .await;
    common::eventually("the queue drained", Duration::from_secs(30), || async {
        let (visible, in_flight) = env.pipeline.depth(&alerts_queue).await;
        (visible + in_flight == 0).then_some(())
    })
    .await;
    alerts.extend(
        env.collect::<SecurityAlert>(&security_ops, Duration::from_secs(2), |_| false)
            .await,
    );
    let mut timeouts: Vec<&AlertSubject> = alerts
        .iter()
        .filter(|n| n.event.kind == AlertKind::LivenessTimeout)
        .map(|n| &n.event.subject)
        .collect();
    timeouts.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        timeouts,
        [
            &AlertSubject::Device(device.clone()),
            &AlertSubject::Source(source)
        ],
        "one alert per origin: {alerts:?}"
    );
    let alert = alerts
        .iter()
        .find(|n| n.event.kind == AlertKind::LivenessTimeout)
        .unwrap();
    assert_eq!(alert.attribute("severity"), Some("high"));
    assert_eq!(alert.event.details["failures"], 5);
    assert_eq!(
        alert.event.details["last_reason"],
        "liveness-not-same-person"
    );
    assert_eq!(
        failures_counted(&stack, "liveness-device#attacker-phone").await,
        6,
        "counted while timed out, but no new timeout"
    );
}
