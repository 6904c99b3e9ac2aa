//! Attacks on sign-in, each refused with its reason and published on `auth-events` as a
//! failure: replaying an earlier selfie key, answering again, answering with another user's
//! key, with a registration photo's key or a `..` path, answering before uploading, a photo of
//! two faces, a non-image, an expired challenge; and every route without (or with a wrong)
//! bearer token. Plus the direct API (`/v1/verify`, `/v1/registrations`) and erasure: after
//! `DELETE /v1/users/<id>` no face, record or photo of that user remains.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::pipeline::fixture;
use common::signin::{Calls, SignIn, TOKEN};
use facegate_loadgen::client::{Challenge, Trigger, VerifierClient, cognito_event};
use facegate_shared::config::{Table, Topic};
use facegate_shared::events::{AuthChannel, AuthEvent, AuthOutcome};
use facegate_shared::tables::{auth_failures, challenges, registrations, users};
use facegate_verifier::VerifierSettings;
use image::{GenericImage, ImageEncoder};
use serde_json::json;

/// Two fixture photos side by side: one picture, two people.
fn two_faces() -> Vec<u8> {
    let left = image::load_from_memory(&fixture("obama_2.jpg"))
        .unwrap()
        .to_rgb8();
    let right = image::load_from_memory(&fixture("biden_2.jpg"))
        .unwrap()
        .to_rgb8();
    let height = left.height().max(right.height());
    let mut both = image::RgbImage::new(left.width() + right.width(), height);
    both.copy_from(&left, 0, 0).unwrap();
    both.copy_from(&right, left.width(), 0).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(
            both.as_raw(),
            both.width(),
            both.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    jpeg
}

/// The reason code of a failed event (`None` for a success).
fn reason(event: &AuthEvent) -> Option<String> {
    match event.outcome {
        AuthOutcome::Success => None,
        AuthOutcome::Failure { .. } => serde_json::to_value(event).unwrap()["reason"]
            .as_str()
            .map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_with_its_reason_and_published() {
    let env = SignIn::start().await;
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;
    env.register("alice", "obama_1.jpg").await;
    env.register("bob", "kit_harington_1.jpg").await;
    let mut expected: Vec<&str> = Vec::new();

    // Answering before uploading anything.
    let early = env.create("alice", &[]).await;
    assert!(!env.verify("alice", &early, &early.key).await);
    expected.push("selfie-missing");

    // A genuine sign-in, whose key is then replayed in a later challenge and answered again.
    let genuine = env.create("alice", &[]).await;
    assert_eq!(
        env.http.put(&genuine.url, fixture("obama_2.jpg")).await,
        200
    );
    assert!(
        env.verify("alice", &genuine, &genuine.key).await,
        "the genuine answer passes"
    );
    assert!(
        !env.verify("alice", &genuine, &genuine.key).await,
        "one challenge, one answer"
    );
    expected.push("challenge-reused");
    let later = env.create("alice", &[]).await;
    assert_eq!(env.http.put(&later.url, fixture("obama_3.jpg")).await, 200);
    assert!(
        !env.verify("alice", &later, &genuine.key).await,
        "an old key is refused"
    );
    expected.push("wrong-answer");

    // Another user's key, a registration photo's key, a `..` path.
    let bobs = env.create("bob", &[]).await;
    assert_eq!(
        env.http
            .put(&bobs.url, fixture("kit_harington_2.jpg"))
            .await,
        200
    );
    let bob_challenge = bobs.key.trim_start_matches("signin/bob/");
    let registration_key = format!("registrations/alice/{bob_challenge}");
    let dotdot = format!("signin/alice/../bob/{bob_challenge}");
    for wrong in [
        bobs.key.as_str(),
        registration_key.as_str(),
        dotdot.as_str(),
    ] {
        assert!(
            !env.verify("alice", &later, wrong).await,
            "{wrong} is refused"
        );
        expected.push("wrong-answer");
    }
    // Bob's selfie was not consumed by alice's attempts: bob still signs in.
    assert!(env.verify("bob", &bobs, &bobs.key).await);

    // A photo of two faces, and something that is not an image.
    let group = env.create("alice", &[]).await;
    assert_eq!(env.http.put(&group.url, two_faces()).await, 200);
    assert!(!env.verify("alice", &group, &group.key).await);
    expected.push("multiple-faces");
    let text = env.create("alice", &[]).await;
    assert_eq!(
        env.http
            .put(&text.url, b"<html>not a selfie</html>".to_vec())
            .await,
        200
    );
    assert!(!env.verify("alice", &text, &text.key).await);
    expected.push("not-an-image");

    // An expired challenge: a verifier whose challenges last 2 s.
    let short = env
        .another_verifier(VerifierSettings {
            challenge_ttl_secs: 2,
            ..VerifierSettings::local(TOKEN)
        })
        .await;
    let short_http = VerifierClient::new(short.url(), TOKEN);
    let (status, created) = short_http
        .post_json(
            "/cognito/create",
            Some(TOKEN),
            &cognito_event(
                "alice",
                Trigger::Create,
                json!({"userAttributes": {}, "challengeName": "CUSTOM_CHALLENGE", "session": [], "userNotFound": false}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let public = &created["response"]["publicChallengeParameters"];
    let (url, key) = (
        public["url"].as_str().unwrap(),
        public["key"].as_str().unwrap(),
    );
    assert_eq!(env.http.put(url, fixture("obama_2.jpg")).await, 200);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let expired = Challenge {
        url: url.into(),
        steps: None,
        frame_urls: Vec::new(),
        key: key.into(),
        public: public.clone(),
        private: created["response"]["privateChallengeParameters"].clone(),
        metadata: created["response"]["challengeMetadata"].clone(),
    };
    assert!(!env.verify_at(&short_http, "alice", &expired, key).await);
    expected.push("challenge-expired");

    // Every refusal is on auth-events as a failure with its reason.
    let failures_wanted = expected.len();
    let events = env
        .collect::<AuthEvent>(&audit, Duration::from_secs(30), |found| {
            found
                .iter()
                .filter(|n| n.event.outcome != AuthOutcome::Success)
                .count()
                >= failures_wanted
        })
        .await;
    let mut published: HashMap<String, usize> = HashMap::new();
    for note in &events {
        assert_eq!(note.attribute("result"), Some(note.event.result_code()));
        if let Some(code) = reason(&note.event) {
            assert_eq!(note.event.user_id.as_str(), "alice", "{:?}", note.event);
            assert_eq!(note.event.channel, AuthChannel::Cognito);
            assert!(note.event.challenge_id.is_some());
            *published.entry(code).or_default() += 1;
        }
    }
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for code in &expected {
        *wanted.entry(code.to_string()).or_default() += 1;
    }
    assert_eq!(published, wanted, "every refusal, with its reason");
    let successes = events
        .iter()
        .filter(|n| n.event.outcome == AuthOutcome::Success)
        .count();
    assert_eq!(successes, 2, "alice's genuine answer and bob's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_token_and_answers_json() {
    let env = SignIn::start().await;
    env.register("alice", "obama_1.jpg").await;
    let routes = [
        ("POST", "/cognito/define"),
        ("POST", "/cognito/create"),
        ("POST", "/cognito/verify"),
        ("POST", "/v1/verify?user_id=alice"),
        ("POST", "/v1/registrations"),
        ("GET", "/v1/registrations/alice"),
        ("DELETE", "/v1/users/alice"),
    ];
    for (method, path) in routes {
        for token in [None, Some("wrong-token"), Some("test-token-012345678")] {
            let (status, body) = env
                .http
                .request(method, path, token, "application/json", b"{}".to_vec())
                .await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
    }
    // Health and metrics are open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = env
            .http
            .request("GET", path, None, "text/plain", Vec::new())
            .await;
        assert_eq!(status, 200, "{path}");
    }
    // Errors are JSON with a stable code.
    let (status, body) = env
        .http
        .post_json("/cognito/define", Some(TOKEN), &json!({"not": "an event"}))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid-request"))
    );
    let (status, body) = env
        .http
        .request(
            "GET",
            "/v1/registrations/a%2F..%2Fb",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid-user-id"))
    );
    let (status, body) = env
        .http
        .send_oversized(
            "/v1/verify?user_id=alice",
            TOKEN,
            "image/jpeg",
            6 * 1024 * 1024,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (413, Some("payload-too-large"))
    );

    // The direct API: the same person passes, another does not (and no score is returned).
    let (status, body) = env
        .http
        .request(
            "POST",
            "/v1/verify?user_id=alice",
            Some(TOKEN),
            "image/jpeg",
            fixture("obama_3.jpg"),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["verified"]),
        (200, &json!(true)),
        "{body}"
    );
    let (_, body) = env
        .http
        .request(
            "POST",
            "/v1/verify?user_id=alice",
            Some(TOKEN),
            "image/jpeg",
            fixture("biden_2.jpg"),
        )
        .await;
    assert_eq!(body["verified"], false);
    assert_eq!(body["reason"], "no-match");
    assert!(body.get("similarity").is_none(), "{body}");
    let (_, body) = env
        .http
        .request(
            "POST",
            "/v1/verify?user_id=nobody",
            Some(TOKEN),
            "image/jpeg",
            fixture("obama_3.jpg"),
        )
        .await;
    assert_eq!(body["reason"], "not-registered");

    // Registration: an upload URL that S3 accepts, and the state of the user's registrations.
    let (status, body) = env
        .http
        .post_json(
            "/v1/registrations",
            Some(TOKEN),
            &json!({"user_id": "dora"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap();
    assert!(
        key.starts_with("registrations/dora/") && key.ends_with(".jpg"),
        "{key}"
    );
    assert_eq!(
        env.http
            .put(body["url"].as_str().unwrap(), fixture("rose_leslie_1.jpg"))
            .await,
        200
    );
    assert!(env.object_exists(key).await);
    let (status, body) = env
        .http
        .request(
            "GET",
            "/v1/registrations/alice",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registrations"][0]["state"], "ACTIVE", "{body}");
    assert!(body["registrations"][0].get("face_id").is_none(), "{body}");
    let (status, body) = env
        .http
        .request(
            "GET",
            "/v1/registrations/nobody",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not-found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_face_record_or_photo() {
    let env = SignIn::start().await;
    let stack = env.pipeline.stack().clone();
    let clients = &stack.clients;
    let keep = env.register("alice", "obama_1.jpg").await;
    let face = env.register("carol", "rose_leslie_1.jpg").await;
    // Everything a user leaves behind: a registration photo, a leftover selfie, a challenge,
    // a failure counter.
    let (_, registered) = env
        .http
        .request(
            "GET",
            "/v1/registrations/carol",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    let upload = registered["registrations"][0]["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.pipeline
        .put(
            &format!("registrations/carol/{upload}.jpg"),
            fixture("rose_leslie_1.jpg"),
            "image/jpeg",
        )
        .await;
    let challenge = env.create("carol", &[]).await;
    assert_eq!(
        env.http
            .put(&challenge.url, fixture("rose_leslie_2.jpg"))
            .await,
        200
    );
    clients
        .dynamodb
        .put_item()
        .table_name(stack.table(Table::AuthFailures))
        .item(
            auth_failures::SUBJECT,
            AttributeValue::S("user#carol".into()),
        )
        .item(
            auth_failures::WINDOW_START,
            AttributeValue::N("1800000000".into()),
        )
        .item(auth_failures::FAILURES, AttributeValue::N("2".into()))
        .send()
        .await
        .unwrap();

    let (status, body) = env
        .http
        .request(
            "DELETE",
            "/v1/users/carol",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["erased"]["faces"], 1, "{body}");
    assert_eq!(body["erased"]["photos"], 2, "{body}");

    // No face of carol's in the collection; alice's is still there.
    let faces = clients
        .rekognition
        .list_faces()
        .collection_id(stack.names.collection())
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = faces.faces().iter().filter_map(|f| f.face_id()).collect();
    assert!(!ids.contains(&face.as_str()), "{ids:?}");
    assert!(
        ids.contains(&keep.as_str()),
        "only carol is erased: {ids:?}"
    );
    // No photo.
    for prefix in ["registrations/carol/", "signin/carol/"] {
        let listed = clients
            .s3
            .list_objects_v2()
            .bucket(stack.names.bucket())
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        assert!(
            listed.contents().is_empty(),
            "{prefix}: {:?}",
            listed.contents()
        );
    }
    // No record.
    let s = |v: &str| AttributeValue::S(v.into());
    let count = |table: Table, key: &'static str, value: &str| {
        let request = clients
            .dynamodb
            .query()
            .table_name(stack.table(table))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", s(value))
            .send();
        async move { request.await.unwrap().count }
    };
    assert_eq!(
        count(Table::Registrations, registrations::USER_ID, "carol").await,
        0
    );
    assert_eq!(count(Table::Users, users::USER_ID, "carol").await, 0);
    assert_eq!(
        count(Table::AuthFailures, auth_failures::SUBJECT, "user#carol").await,
        0
    );
    let challenges_left = clients
        .dynamodb
        .scan()
        .table_name(stack.table(Table::Challenges))
        .filter_expression("#u = :u")
        .expression_attribute_names("#u", challenges::USER_ID)
        .expression_attribute_values(":u", s("carol"))
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(challenges_left, 0);
    // And carol cannot sign in any more; alice still can.
    let defined = env.define("carol", &[]).await;
    assert_eq!(defined["response"]["failAuthentication"], true);
    let defined = env.define("alice", &[]).await;
    assert_eq!(defined["response"]["challengeName"], "CUSTOM_CHALLENGE");
    // Erasing again finds nothing and is not an error.
    let (status, body) = env
        .http
        .request(
            "DELETE",
            "/v1/users/carol",
            Some(TOKEN),
            "text/plain",
            Vec::new(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["erased"]["faces"]),
        (200, &json!(0)),
        "{body}"
    );
}

/// The face Verify matches is the one recorded when the challenge was issued: private
/// parameters that name another face (whoever can send trigger events can write them) do not
/// let a person sign in as someone else with their own face.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_matches_the_recorded_face_not_the_one_the_event_names() {
    let env = SignIn::start().await;
    env.register("alice", "obama_1.jpg").await;
    let mallorys_face = env.register("mallory", "biden_1.jpg").await;

    let mut challenge = env.create("alice", &[]).await;
    assert_eq!(
        env.http.put(&challenge.url, fixture("biden_2.jpg")).await,
        200
    );
    challenge.private["faceId"] = serde_json::json!(mallorys_face);
    assert!(
        !env.verify("alice", &challenge, &challenge.key).await,
        "mallory's selfie must not sign in as alice, whatever face the event names"
    );

    // And the genuine case still passes with the event untouched.
    let genuine = env.create("alice", &[]).await;
    assert_eq!(
        env.http.put(&genuine.url, fixture("obama_2.jpg")).await,
        200
    );
    assert!(env.verify("alice", &genuine, &genuine.key).await);
}
