//! Sign-in end to end, playing Cognito: Define -> Create -> a real PUT of the selfie to the
//! presigned URL -> Verify -> Define, with the JSON Cognito sends, against the real emulator,
//! the real face engine and the failure-alert worker running in-process.
//!
//! A genuine user gets tokens; a different person's photo fails three times, Define then fails
//! the sign-in, the worker locks the user (Define refuses them from then on), and a
//! security-ops queue subscribed to `security-alerts` receives the lockout alert with its
//! `kind` and `severity` attributes.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::pipeline::fixture;
use common::signin::{CUSTOM_CHALLENGE, Calls, SignIn};
use facegate_shared::config::{Table, Topic};
use facegate_shared::events::{AlertKind, AlertSubject, AuthEvent, AuthOutcome, SecurityAlert};
use facegate_shared::tables::users;
use facegate_workers::alerts::AlertsSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_user_signs_in_and_an_impostor_gets_the_user_locked() {
    let env = SignIn::start().await;
    let security_ops = env.subscribe(Topic::SecurityAlerts, "security-ops").await;
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;
    let _alerts = env.run_alerts(AlertsSettings {
        lockout_threshold: 3,
        lockout_secs: 600,
        ..AlertsSettings::default()
    });
    let face_id = env.register("alice", "obama_1.jpg").await;

    // The genuine user, step by step.
    let mut session = Vec::new();
    let defined = env.define("alice", &session).await;
    assert_eq!(defined["response"]["challengeName"], CUSTOM_CHALLENGE);
    assert_eq!(defined["response"]["issueTokens"], false);
    assert_eq!(defined["response"]["failAuthentication"], false);

    let challenge = env.create("alice", &session).await;
    assert!(
        challenge.key.starts_with("signin/alice/") && challenge.key.ends_with(".jpg"),
        "{}",
        challenge.key
    );
    let public_names: Vec<&String> = challenge.public.as_object().unwrap().keys().collect();
    assert_eq!(
        public_names.len(),
        3,
        "url, key and expiry only: {public_names:?}"
    );
    // Nothing secret reaches the client: the face id is in the private parameters only.
    let public_text = challenge.public.to_string() + &challenge.metadata.to_string();
    assert!(!public_text.contains(&face_id), "{public_text}");
    assert_eq!(challenge.private["faceId"], face_id.as_str());
    assert_eq!(challenge.private["key"], challenge.key.as_str());
    assert!(
        challenge.public["expiry"]
            .as_str()
            .unwrap_or_default()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );

    let put = env.http.put(&challenge.url, fixture("obama_2.jpg")).await;
    assert_eq!(put, 200, "the presigned URL accepts the selfie");
    assert!(
        env.verify("alice", &challenge, &challenge.key).await,
        "the same person"
    );
    assert!(
        !env.object_exists(&challenge.key).await,
        "the selfie is deleted after the check"
    );
    session.push(serde_json::json!({
        "challengeName": CUSTOM_CHALLENGE, "challengeResult": true, "challengeMetadata": challenge.metadata,
    }));
    let defined = env.define("alice", &session).await;
    assert_eq!(defined["response"]["issueTokens"], true, "{defined}");
    assert_eq!(defined["response"]["failAuthentication"], false);

    // An impostor: three wrong answers, then Define fails the sign-in.
    let mut session = Vec::new();
    for attempt in 1..=3 {
        let correct = env
            .attempt("alice", fixture("biden_1.jpg"), &mut session)
            .await;
        assert!(!correct, "attempt {attempt}: another person must not pass");
    }
    let defined = env.define("alice", &session).await;
    assert_eq!(defined["response"]["failAuthentication"], true, "{defined}");
    assert_eq!(defined["response"]["issueTokens"], false);

    // The alerts worker locks alice: a fresh sign-in fails at once, even for her own face.
    common::eventually("alice locked", Duration::from_secs(60), || async {
        let defined = env.define("alice", &[]).await;
        (defined["response"]["failAuthentication"] == true).then_some(())
    })
    .await;
    let item = env
        .pipeline
        .stack()
        .clients
        .dynamodb
        .get_item()
        .table_name(env.pipeline.stack().table(Table::Users))
        .key(users::USER_ID, AttributeValue::S("alice".into()))
        .send()
        .await
        .expect("GetItem users")
        .item
        .expect("the users item");
    let until: i64 = item[users::LOCKED_UNTIL].as_n().unwrap().parse().unwrap();
    assert!(
        until > chrono::Utc::now().timestamp() + 500,
        "locked for ~600 s"
    );

    // Security operations hear about it, with the attributes their filters use.
    let alerts = env
        .collect::<SecurityAlert>(&security_ops, Duration::from_secs(30), |found| {
            found.iter().any(|n| n.event.kind == AlertKind::Lockout)
        })
        .await;
    let lockout = alerts
        .iter()
        .find(|n| n.event.kind == AlertKind::Lockout)
        .unwrap_or_else(|| {
            panic!(
                "a lockout alert; got {:?}",
                alerts.iter().map(|n| n.event.kind).collect::<Vec<_>>()
            )
        });
    assert_eq!(lockout.attribute("kind"), Some("lockout"));
    assert_eq!(lockout.attribute("severity"), Some("high"));
    assert_eq!(
        lockout.event.subject,
        AlertSubject::User("alice".parse().unwrap())
    );
    assert_eq!(
        alerts
            .iter()
            .filter(|n| n.event.kind == AlertKind::Lockout)
            .count(),
        1,
        "one lockout, one alert"
    );

    // The audit trail: one success at >= 99, three no-match failures well below.
    let events = env
        .collect::<AuthEvent>(&audit, Duration::from_secs(20), |found| found.len() >= 4)
        .await;
    let successes: Vec<&AuthEvent> = events
        .iter()
        .map(|n| &n.event)
        .filter(|e| e.outcome == AuthOutcome::Success)
        .collect();
    assert_eq!(successes.len(), 1, "{events:?}");
    assert!(successes[0].similarity.unwrap() >= 99.0);
    let failures: Vec<&AuthEvent> = events
        .iter()
        .map(|n| &n.event)
        .filter(|e| e.outcome != AuthOutcome::Success)
        .collect();
    assert_eq!(failures.len(), 3, "{events:?}");
    for failure in failures {
        assert_eq!(
            serde_json::to_value(failure).unwrap()["reason"],
            "no-match",
            "{failure:?}"
        );
        assert!(failure.similarity.is_none_or(|s| s < 50.0), "{failure:?}");
    }
}
