//! Sign-in through a real Cognito user pool: the local emulator's pool calls the trigger
//! Lambda, which is the `facegate` binary under test (`facegate verifier --lambda`, started by
//! the emulator as a host process). The tests speak Cognito's API only (`SignUp`,
//! `InitiateAuth`, `RespondToAuthChallenge`, SRP) plus the presigned PUT, like an app, and
//! check the tokens against the pool's JWKS themselves.
//!
//! - a person signs up, registers their face with their own access token, and signs in with
//!   another photo of themselves; their token reaches their data and nobody else's;
//! - a different person's face three times gets no tokens, and the alerts worker locks the
//!   user;
//! - the attacks that can be expressed through Cognito are wrong answers, each published with
//!   its reason;
//! - under the `password+face` policy the face challenge comes only after the password.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::cognito::{PASSWORD, PoolStack};
use common::eventually;
use common::pipeline::{fixture, two_faces_jpeg};
use common::signin::Calls;
use facegate_loadgen::cognito_app::{Answered, AppError, CognitoApp};
use facegate_shared::config::Topic;
use facegate_shared::events::{AuthEvent, AuthOutcome};
use facegate_workers::alerts::AlertsSettings;
use facegate_workers::{DedupSettings, IndexerSettings};
use serde_json::json;

fn selfie(name: &str) -> Bytes {
    facegate_loadgen::client::fresh_copy(&fixture(name))
}

fn refused(result: Result<Answered, AppError>) -> AppError {
    match result {
        Err(e) => e,
        Ok(Answered::SignedIn(_)) => panic!("tokens were issued"),
        Ok(Answered::TryAgain(_)) => panic!("a wrong answer, not the end of the sign-in"),
    }
}

fn try_again(result: Result<Answered, AppError>) {
    match result {
        Ok(Answered::TryAgain(next)) => assert!(next.key.starts_with("signin/")),
        Ok(Answered::SignedIn(_)) => panic!("tokens were issued"),
        Err(e) => panic!("expected another challenge, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_registers_with_their_token_and_signs_in_with_their_face() {
    let stack = PoolStack::start().await;
    let env = &stack.env;
    let roles = env
        .pipeline
        .run_roles(IndexerSettings::default(), DedupSettings::default());

    // Sign up (confirmed by the PreSignUp trigger), then the password alone.
    assert!(stack.app.sign_up("alice", PASSWORD).await.unwrap());
    let duplicate = stack.app.sign_up("alice", PASSWORD).await.unwrap_err();
    assert_eq!(duplicate.cognito_code(), Some("UsernameExistsException"));
    let bad_name = stack.app.sign_up("a/b", PASSWORD).await.unwrap_err();
    assert!(bad_name.cognito_code().is_some(), "{bad_name}");
    let password = stack.app.password_sign_in("alice", PASSWORD).await.unwrap();
    assert_eq!(stack.signed_in_as(&password).await, "alice");
    let mine = password.access_token.as_str();

    // Register my face with my own token: the URL is for my folder only.
    let (status, upload) = env
        .http
        .post_json("/v1/registrations", Some(mine), &json!({}))
        .await;
    assert_eq!(status, 201, "{upload}");
    let key = upload["key"].as_str().unwrap();
    assert!(key.starts_with("registrations/alice/"), "{key}");
    let (status, body) = env
        .http
        .post_json("/v1/registrations", Some(mine), &json!({"user_id": "bob"}))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let url = upload["url"].as_str().unwrap();
    assert_eq!(env.http.put(url, fixture("obama_1.jpg")).await, 200);
    let state = eventually(
        "alice's registration to become ACTIVE",
        Duration::from_secs(60),
        || async {
            let (status, body) = env
                .http
                .request(
                    "GET",
                    "/v1/registrations/alice",
                    Some(mine),
                    "application/json",
                    vec![],
                )
                .await;
            let state = body["registrations"][0]["state"]
                .as_str()
                .map(str::to_string);
            (status == 200
                && state.as_deref() != Some("PENDING")
                && state.as_deref() != Some("INDEXED"))
            .then_some(state)
        },
    )
    .await;
    assert_eq!(state.as_deref(), Some("ACTIVE"));

    // Sign in with the face: another photo of the same person.
    let challenge = stack.app.start_face_sign_in("alice").await.unwrap();
    let mut names: Vec<&String> = challenge.parameters.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["expiry", "key", "url"],
        "nothing else reaches the client"
    );
    stack
        .app
        .upload(&challenge, selfie("obama_2.jpg"))
        .await
        .unwrap();
    let Answered::SignedIn(tokens) = stack.app.answer(&challenge, &challenge.key).await.unwrap()
    else {
        panic!("the genuine face was refused");
    };
    assert_eq!(stack.signed_in_as(&tokens).await, "alice");

    // The face's access token reaches alice's data, and only hers.
    let token = tokens.access_token.as_str();
    let get = |path: &'static str, token: String| async move {
        env.http
            .request("GET", path, Some(&token), "application/json", vec![])
            .await
    };
    assert_eq!(get("/v1/registrations/alice", token.into()).await.0, 200);
    let (status, body) = get("/v1/registrations/bob", token.into()).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = env
        .http
        .request(
            "POST",
            "/cognito/define",
            Some(token),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 403, "a person's token cannot call the triggers");

    // Tampered, unsigned and foreign tokens are refused with a stable code.
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims: serde_json::Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap()
    };
    let mut as_bob = claims.clone();
    as_bob["username"] = json!("bob");
    let tampered = format!("{}.{}.{}", parts[0], b64(as_bob), parts[2]);
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    let other = common::TestStack::new().await;
    other.provision().await;
    let other_pool =
        facegate_shared::user_pool::UserPool::find(&other.clients.cognito, &other.names)
            .await
            .unwrap();
    let other_app = CognitoApp::new(other.clients.cognito.clone(), other_pool);
    other_app.sign_up("bob", PASSWORD).await.unwrap();
    let foreign = other_app
        .password_sign_in("bob", PASSWORD)
        .await
        .unwrap()
        .access_token;
    for (what, bad) in [
        ("tampered", tampered),
        ("alg none", unsigned),
        ("another pool's", foreign),
        ("an id token", tokens.id_token.clone()),
    ] {
        let (status, body) = get("/v1/registrations/bob", bad).await;
        assert_eq!(status, 401, "{what} token: {body}");
        assert_eq!(body["error"]["code"], "invalid-token", "{what} token");
    }

    // Erase myself with my own token.
    let (status, body) = env
        .http
        .request(
            "DELETE",
            "/v1/users/alice",
            Some(token),
            "application/json",
            vec![],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get("/v1/registrations/alice", token.into()).await.0, 404);
    roles.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_face_three_times_gets_no_tokens_and_the_user_locked() {
    let stack = PoolStack::start().await;
    let env = &stack.env;
    let _alerts = env.run_alerts(AlertsSettings {
        lockout_threshold: 3,
        lockout_secs: 600,
        ..AlertsSettings::default()
    });
    stack.person("bob", "biden_1.jpg").await;

    let first = stack.app.start_face_sign_in("bob").await.unwrap();
    stack
        .app
        .upload(&first, selfie("obama_2.jpg"))
        .await
        .unwrap();
    let Ok(Answered::TryAgain(second)) = stack.app.answer(&first, &first.key).await else {
        panic!("a wrong face is a wrong answer with tries left");
    };
    stack
        .app
        .upload(&second, selfie("obama_3.jpg"))
        .await
        .unwrap();
    let Ok(Answered::TryAgain(third)) = stack.app.answer(&second, &second.key).await else {
        panic!("a second wrong face still leaves a try");
    };
    stack
        .app
        .upload(&third, selfie("obama_1.jpg"))
        .await
        .unwrap();
    let ended = refused(stack.app.answer(&third, &third.key).await);
    assert_eq!(
        ended.cognito_code(),
        Some("NotAuthorizedException"),
        "{ended}"
    );

    // The alerts worker counts the three failures and locks bob: even his own face is refused.
    eventually("bob to be locked", Duration::from_secs(30), || async {
        match stack.app.start_face_sign_in("bob").await {
            Err(e) if e.cognito_code() == Some("NotAuthorizedException") => Some(()),
            _ => None,
        }
    })
    .await;
    let locked = stack
        .app
        .sign_in_with_face("bob", selfie("biden_2.jpg"))
        .await
        .unwrap_err();
    assert_eq!(locked.cognito_code(), Some("NotAuthorizedException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_through_cognito_are_wrong_answers_with_their_reasons() {
    let stack = PoolStack::start().await;
    let env = &stack.env;
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;
    stack.person("carol", "obama_1.jpg").await;
    stack.person("dave", "biden_1.jpg").await;
    let app = &stack.app;
    let mut expected = Vec::new();

    // Another user's key: dave's challenge, answered in carol's session.
    let carols = app.start_face_sign_in("carol").await.unwrap();
    let daves = app.start_face_sign_in("dave").await.unwrap();
    app.upload(&daves, selfie("obama_2.jpg")).await.unwrap();
    try_again(app.answer(&carols, &daves.key).await);
    expected.push("wrong-answer");

    // A replayed key: a genuine sign-in's key, answered again in a new session.
    let Answered::SignedIn(_) = app
        .sign_in_with_face("carol", selfie("obama_2.jpg"))
        .await
        .unwrap()
    else {
        panic!("carol's own face signs her in");
    };
    expected.push("success");
    let old = carols.key.clone();
    let fresh = app.start_face_sign_in("carol").await.unwrap();
    app.upload(&fresh, selfie("obama_2.jpg")).await.unwrap();
    try_again(app.answer(&fresh, &old).await);
    expected.push("wrong-answer");

    // Answering before uploading.
    let early = app.start_face_sign_in("carol").await.unwrap();
    try_again(app.answer(&early, &early.key).await);
    expected.push("selfie-missing");

    // Two faces; not an image.
    let group = app.start_face_sign_in("carol").await.unwrap();
    app.upload(&group, Bytes::from(two_faces_jpeg()))
        .await
        .unwrap();
    try_again(app.answer(&group, &group.key).await);
    expected.push("multiple-faces");
    let text = app.start_face_sign_in("carol").await.unwrap();
    app.upload(&text, Bytes::from_static(b"<html>not a selfie</html>"))
        .await
        .unwrap();
    try_again(app.answer(&text, &text.key).await);
    expected.push("not-an-image");

    let events = env
        .collect::<AuthEvent>(&audit, Duration::from_secs(30), |found| {
            found.len() >= expected.len()
        })
        .await;
    let mut outcomes: Vec<String> = events
        .iter()
        .filter(|n| n.event.user_id.as_str() == "carol")
        .map(|n| match &n.event.outcome {
            AuthOutcome::Success => "success".to_string(),
            AuthOutcome::Failure { .. } => serde_json::to_value(&n.event).unwrap()["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    outcomes.sort();
    expected.sort();
    assert_eq!(outcomes, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_then_face_needs_the_password_before_the_face() {
    let stack = PoolStack::start_with_env(&[("FACEGATE_SIGNIN_POLICY", "password+face")]).await;
    stack.person("erin", "kit_harington_1.jpg").await;
    let app = &stack.app;

    // The face alone is not enough under this policy.
    let alone = app.start_face_sign_in("erin").await.unwrap_err();
    assert_eq!(
        alone.cognito_code(),
        Some("NotAuthorizedException"),
        "{alone}"
    );
    // A wrong password never reaches the face challenge.
    let wrong = app
        .start_password_and_face_sign_in("erin", "Wrong-horse-9")
        .await
        .unwrap_err();
    assert_eq!(
        wrong.cognito_code(),
        Some("NotAuthorizedException"),
        "{wrong}"
    );
    // The password, then the face.
    let challenge = app
        .start_password_and_face_sign_in("erin", PASSWORD)
        .await
        .unwrap();
    app.upload(&challenge, selfie("kit_harington_2.jpg"))
        .await
        .unwrap();
    let Answered::SignedIn(tokens) = app.answer(&challenge, &challenge.key).await.unwrap() else {
        panic!("password and face sign erin in");
    };
    assert_eq!(stack.signed_in_as(&tokens).await, "erin");
}
