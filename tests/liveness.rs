//! Active liveness through the real user pool: the trigger Lambda (this `facegate` binary,
//! run by the emulator) with `FACEGATE_LIVENESS_POLICY=active`, the attack suite of
//! `facegate bench liveness` run against it, and each attack kind asserted: never accepted,
//! refused for its own reason (read from the `auth-events` topic). Genuine head-turn sequences
//! from the real clip must sign in. A device that fails five liveness checks is timed out
//! (the failure-alert worker counts, Verify refuses), and another device is not. The suite
//! runs again with `aws-face-liveness`, through the engine's Face Liveness stand-in.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::cognito::PoolStack;
use common::pipeline::fixture;
use common::pipeline::workspace_root;
use common::signin::SignIn;
use facegate_loadgen::cognito_app::{Answered, CognitoApp, Uploads};
use facegate_loadgen::liveness::{
    self as liveness_suite, ATTACKS, Camera, Clip, SuiteReport, SuiteSettings,
};
use facegate_shared::config::Topic;
use facegate_shared::events::{AuthEvent, AuthOutcome, Origin};
use facegate_shared::ids::DeviceId;
use facegate_verifier::liveness::Sequence;
use facegate_workers::alerts::AlertsSettings;

/// Short enough that the `after-window` attack waits little.
const TTL_SECS: u64 = 12;

fn reason(event: &AuthEvent) -> String {
    match &event.outcome {
        AuthOutcome::Success => "success".into(),
        AuthOutcome::Failure { .. } => serde_json::to_value(event).unwrap()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The outcome (`success` or the reason) of every published sign-in of the suite's users, by
/// the kind of attempt each user made, once `wanted` events are in.
async fn reasons_by_kind(
    env: &SignIn,
    audit: &str,
    report: &SuiteReport,
    wanted: usize,
) -> HashMap<&'static str, Vec<String>> {
    let users: HashMap<String, &'static str> = report
        .users
        .iter()
        .map(|(kind, user)| (user.to_string(), *kind))
        .collect();
    let events = env
        .collect::<AuthEvent>(audit, Duration::from_secs(60), |found| {
            found.len() >= wanted
        })
        .await;
    let mut seen: HashMap<&'static str, Vec<String>> = HashMap::new();
    for note in &events {
        if let Some(kind) = users.get(note.event.user_id.as_str()) {
            seen.entry(kind).or_default().push(reason(&note.event));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attack_kind_signs_in_and_genuine_turns_do() {
    let ttl = TTL_SECS.to_string();
    let stack = PoolStack::start_with_env(&[
        ("FACEGATE_LIVENESS_POLICY", "active"),
        ("FACEGATE_CHALLENGE_TTL_SECS", &ttl),
    ])
    .await;
    let env = &stack.env;
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;
    let root = workspace_root();
    let args = SuiteSettings {
        clip: root.join("tests/fixtures/faces/clip"),
        registration_photo: root.join("tests/fixtures/faces/lin_manuel_miranda_1.png"),
        genuine: 6,
        attempts: 1,
        challenge_ttl_secs: TTL_SECS,
    };
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let report = liveness_suite::run(env.pipeline.stack(), &stack.app, &args, run_id)
        .await
        .expect("the suite runs");
    println!("{report}");

    let genuine = &report.kinds[0];
    assert_eq!(genuine.kind, "genuine");
    assert_eq!(
        genuine.accepted, genuine.attempts,
        "a genuine head turn was refused:\n{report}"
    );
    for kind in &report.kinds[1..] {
        assert_eq!(kind.accepted, 0, "{} signed in:\n{report}", kind.kind);
    }
    assert_eq!(report.kinds.len(), 1 + ATTACKS.len());

    // Each refusal for its own reason. The replays target the genuine user, after a genuine
    // sign-in each.
    let expected: HashMap<&str, &str> = [
        ("still-photo", "liveness-replayed-frame"),
        ("tilted-photo", "liveness-wrong-pose"),
        ("wrong-order", "liveness-wrong-pose"),
        ("two-people", "liveness-not-same-person"),
        ("before-challenge", "liveness-frame-missing"),
        ("after-window", "challenge-expired"),
    ]
    .into();
    let seen = reasons_by_kind(env, &audit, &report, 6 + 2 * 2 + expected.len()).await;
    for (kind, reason) in &expected {
        let got = seen.get(kind).map(Vec::as_slice);
        // Most tilts narrow the face more than a head's turn does (`liveness-wrong-pose`);
        // a tilt of some frames still fits the foreshortening bound, and the tilted picture
        // is then refused by the same-person check behind it. Either is a liveness refusal.
        let tilt_past_foreshortening =
            *kind == "tilted-photo" && got == Some(&["liveness-not-same-person".to_string()][..]);
        assert!(
            got == Some(&[reason.to_string()][..]) || tilt_past_foreshortening,
            "{kind}: {seen:?}"
        );
    }
    let mut genuine_user = seen.get("genuine").cloned().unwrap_or_default();
    genuine_user.sort();
    assert_eq!(
        genuine_user,
        [
            vec!["liveness-replayed-frame".to_string(); 2],
            vec!["success".to_string(); 6 + 2]
        ]
        .concat(),
        "the replays of a genuine sign-in's frames"
    );
}

/// The same suite with `aws-face-liveness`: Create opens a Face Liveness session on the
/// engine (its stand-in), the app feeds the session its frames, Verify reads the session's
/// result and matches its reference image. The client sees the session id, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aws_face_liveness_no_attack_kind_signs_in_and_genuine_turns_do() {
    let ttl = TTL_SECS.to_string();
    let stack = PoolStack::start_with_env(&[
        ("FACEGATE_LIVENESS_POLICY", "aws-face-liveness"),
        ("FACEGATE_CHALLENGE_TTL_SECS", &ttl),
    ])
    .await;
    let env = &stack.env;
    let app = stack.app.with_liveness_stand_in(&env.pipeline.engine.url());
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;

    // Only the session id, the key and the expiry reach the client; the challenge without
    // the stand-in is an error that says what to do, not a selfie URL.
    stack.person("frank", "obama_1.jpg").await;
    let challenge = app.start_face_sign_in("frank").await.unwrap();
    let mut names: Vec<&String> = challenge.parameters.keys().collect();
    names.sort();
    assert_eq!(names, ["expiry", "key", "livenessSessionId"]);
    let error = stack.app.start_face_sign_in("frank").await.unwrap_err();
    assert!(
        error.to_string().contains("FaceLivenessDetector"),
        "{error}"
    );

    let root = workspace_root();
    let args = SuiteSettings {
        clip: root.join("tests/fixtures/faces/clip"),
        registration_photo: root.join("tests/fixtures/faces/lin_manuel_miranda_1.png"),
        genuine: 6,
        attempts: 1,
        challenge_ttl_secs: TTL_SECS,
    };
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let report = liveness_suite::run(env.pipeline.stack(), &app, &args, run_id)
        .await
        .expect("the suite runs");
    println!("{report}");
    let genuine = &report.kinds[0];
    assert_eq!(
        genuine.accepted, genuine.attempts,
        "a genuine head turn was refused:\n{report}"
    );
    for kind in &report.kinds[1..] {
        assert_eq!(kind.accepted, 0, "{} signed in:\n{report}", kind.kind);
    }

    // The session decides: every attack but the late answer is an unconfirmed session.
    let seen = reasons_by_kind(env, &audit, &report, 6 + 2 * 2 + 6).await;
    for kind in [
        "still-photo",
        "tilted-photo",
        "wrong-order",
        "two-people",
        "before-challenge",
    ] {
        assert_eq!(
            seen.get(kind).map(Vec::as_slice),
            Some(&["liveness-not-confirmed".to_string()][..]),
            "{kind}: {seen:?}"
        );
    }
    assert_eq!(
        seen.get("after-window").map(Vec::as_slice),
        Some(&["challenge-expired".to_string()][..]),
        "{seen:?}"
    );
    let mut genuine_user = seen.get("genuine").cloned().unwrap_or_default();
    genuine_user.sort();
    assert_eq!(
        genuine_user,
        [
            vec!["liveness-not-confirmed".to_string(); 2],
            vec!["success".to_string(); 6 + 2]
        ]
        .concat(),
        "the replays of a genuine sign-in's frames into a new session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_challenge_shows_the_client_its_steps_and_urls_only() {
    let stack = PoolStack::start_with_env(&[("FACEGATE_LIVENESS_POLICY", "active")]).await;
    stack.person("frank", "obama_1.jpg").await;
    let mut previous: Option<Sequence> = None;
    for _ in 0..4 {
        let challenge = stack.app.start_face_sign_in("frank").await.unwrap();
        let mut names: Vec<&String> = challenge.parameters.keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "expiry",
                "frame1Url",
                "frame2Url",
                "frame3Url",
                "key",
                "steps"
            ],
            "nothing else reaches the client"
        );
        let Uploads::Frames { steps, urls } = &challenge.uploads else {
            panic!("a liveness challenge asks for frames");
        };
        assert_eq!(urls.len(), 3);
        assert_ne!(
            Some(steps),
            previous.as_ref(),
            "never the same steps twice in a row"
        );
        previous = Some(steps.clone());
        // A single selfie is no answer to it.
        assert!(
            stack
                .app
                .upload(&challenge, bytes::Bytes::from_static(b"x"))
                .await
                .is_err()
        );
    }
}

/// One face sign-in of `user` on `app` with the frames `frames_for` makes for the asked steps:
/// whether it ended signed in.
async fn sign_in(
    app: &CognitoApp,
    user: &str,
    frames_for: impl FnOnce(&Sequence) -> Vec<Bytes>,
) -> bool {
    let challenge = app.start_face_sign_in(user).await.expect("InitiateAuth");
    let Uploads::Frames { steps, .. } = &challenge.uploads else {
        panic!("liveness is active: the challenge asks for frames");
    };
    let frames = frames_for(steps);
    app.upload_frames(&challenge, &frames)
        .await
        .expect("PUT the frames");
    matches!(
        app.answer(&challenge, &challenge.key).await,
        Ok(Answered::SignedIn(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_fails_five_liveness_checks_is_timed_out_and_another_is_not() {
    let stack = PoolStack::start_with_env(&[("FACEGATE_LIVENESS_POLICY", "active")]).await;
    let env = &stack.env;
    let audit = env.subscribe(Topic::AuthEvents, "audit").await;
    // The user's own lock would end the attack first: here the device's limit is under test.
    let _alerts = env.run_alerts(AlertsSettings {
        lockout_threshold: 100,
        ..AlertsSettings::default()
    });
    let user = "lin";
    stack.person(user, "lin_manuel_miranda_1.png").await;
    let clip = Clip::load(&workspace_root().join("tests/fixtures/faces/clip")).expect("the clip");
    let mut camera = Camera::new(&clip);
    let attacker = DeviceId::parse("attacker-phone").unwrap();
    let on_attacker = stack.app.on_device(attacker.clone());
    let on_own_phone = stack.app.on_device(DeviceId::random());

    // Five presentations of the registration photo, held still: five failed checks.
    let photo = Bytes::from(fixture("lin_manuel_miranda_1.png"));
    for attempt in 1..=5 {
        let signed_in = sign_in(&on_attacker, user, |steps| {
            vec![photo.clone(); steps.steps().len()]
        })
        .await;
        assert!(!signed_in, "attack {attempt} signed in");
    }
    let origin = Origin::Device(attacker.clone());
    common::eventually("the device timed out", Duration::from_secs(30), || {
        env.timed_out_until(&origin)
    })
    .await;

    // Now even the real person is refused on that device, before any face work...
    let refused = !sign_in(&on_attacker, user, |steps| camera.frames(steps)).await;
    assert!(refused, "a timed-out device signed in");
    // ...and signs in on their own.
    assert!(
        sign_in(&on_own_phone, user, |steps| camera.frames(steps)).await,
        "another device is not timed out"
    );

    let events = env
        .collect::<AuthEvent>(&audit, Duration::from_secs(60), |found| found.len() >= 7)
        .await;
    let mut of_attacker: Vec<&AuthEvent> = events
        .iter()
        .map(|n| &n.event)
        .filter(|e| e.device.as_ref() == Some(&attacker))
        .collect();
    of_attacker.sort_by_key(|e| e.time);
    let of_attacker: Vec<String> = of_attacker.into_iter().map(reason).collect();
    assert_eq!(of_attacker.len(), 6, "{of_attacker:?}");
    assert!(
        of_attacker[..5]
            .iter()
            .all(|r| r.starts_with("liveness-") && r != "liveness-timed-out"),
        "{of_attacker:?}"
    );
    assert_eq!(of_attacker[5], "liveness-timed-out");
}
