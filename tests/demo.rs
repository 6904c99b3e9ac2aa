//! `facegate demo` and `facegate erase` end to end: the real `facegate dev` binary (engine,
//! provisioning, every role, the verifier over HTTP) on a stack of its own, the demo run
//! against it as a separate process, an operator's erasure, and a clean stop on SIGTERM.
//!
//! Needs the emulator (`scripts/stack.sh start`; `AWS_ENDPOINT_URL` is honoured) and the face
//! models (`scripts/setup.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::TestStack;
use facegate_loadgen::client::{StatusCode, VerifierClient};
use tokio::process::{Child, Command};

const TOKEN: &str = "demo-test-token-0123456789";
/// `facegate dev` loads the models and provisions a whole stack before it is ready.
const READY_WITHIN: Duration = Duration::from_secs(180);
/// The demo's own steps wait at most 60 s each; eight of them, with room to spare.
const DEMO_WITHIN: Duration = Duration::from_secs(480);

/// A free loopback port: bound, then released for the child to take.
fn free_ports<const N: usize>() -> [u16; N] {
    // All bound at once, so the N ports differ.
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("an address").port())
}

/// `facegate <args>` with the stack's prefix and the given settings; settings the developer
/// may have exported must not change the stack under test.
fn facegate(test: &TestStack, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_facegate"));
    command
        .args(args)
        .env("FACEGATE_PREFIX", test.prefix.as_str())
        .env("FACEGATE_ENV", "local")
        .env("FACEGATE_VERIFIER_TOKEN", TOKEN);
    for name in [
        "FACEGATE_BUCKET",
        "FACEGATE_DEDUP_POLICY",
        "FACEGATE_DEDUP_THRESHOLD",
        "FACEGATE_LOCKOUT_THRESHOLD",
        "FACEGATE_VERIFY_MAX_ANSWERS",
        "FACEGATE_VERIFY_THRESHOLD",
        "FACEGATE_DEMO_FACES",
        "FACEGATE_DEMO_ALICE",
        "FACEGATE_DEMO_CLIP",
        "FACEGATE_DEMO_RUN_ID",
        "FACEGATE_LIVENESS_POLICY",
        "FACEGATE_DEMO_VERIFIER_URL",
        "AWS_ENDPOINT_URL_REKOGNITION",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn output_within(what: &str, within: Duration, mut command: Command) -> Output {
    tokio::time::timeout(within, command.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {within:?}"))
        .unwrap_or_else(|e| panic!("{what} could not run: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `facegate dev` as a child process, its output in files (a full pipe would block it).
struct Dev {
    child: Child,
    log: PathBuf,
}

impl Dev {
    async fn wait_ready(&mut self, test: &TestStack, ops_port: u16) {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let readyz = format!("http://127.0.0.1:{ops_port}/readyz");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "facegate dev exited ({status}) before it was ready:\n{}",
                    tail(&self.log)
                );
            }
            // The containers' own health check, pointed at the operations endpoint.
            let probe = facegate(test, &["health", "--url", &readyz], &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .expect("facegate health runs");
            if probe.success() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "facegate dev was not ready within {READY_WITHIN:?}:\n{}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGTERM (as ECS and Kubernetes stop a task); it must drain and exit 0 within 30 s.
    async fn stop(mut self) {
        let pid = self.child.id().expect("facegate dev is running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "facegate dev still running 30 s after SIGTERM:\n{}",
                    tail(&self.log)
                )
            })
            .expect("wait for facegate dev");
        assert!(
            exited.success(),
            "facegate dev exited with {exited} after SIGTERM:\n{}",
            tail(&self.log)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_the_whole_story_against_facegate_dev() {
    let test = TestStack::new().await;
    let [engine_port, verifier_port, ops_port] = free_ports::<3>();
    let dir = std::env::temp_dir().join(format!("facegate-demo-test-{}", test.prefix));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let log = dir.join("dev.log");
    let log_file = std::fs::File::create(&log).expect("the log file");
    let engine_url = format!("http://127.0.0.1:{engine_port}");
    let verifier_url = format!("http://127.0.0.1:{verifier_port}");

    let child = facegate(
        &test,
        &["dev"],
        &[
            ("FACEGATE_ENGINE_LISTEN", format!("127.0.0.1:{engine_port}")),
            (
                "FACEGATE_ENGINE_DATA_DIR",
                dir.join("engine").display().to_string(),
            ),
            (
                "FACEGATE_VERIFIER_LISTEN",
                format!("127.0.0.1:{verifier_port}"),
            ),
            ("FACEGATE_OPS_LISTEN", format!("127.0.0.1:{ops_port}")),
        ],
    )
    .stdout(log_file.try_clone().expect("the log file"))
    .stderr(log_file)
    .kill_on_drop(true)
    .spawn()
    .expect("facegate dev starts");
    let mut dev = Dev { child, log };
    dev.wait_ready(&test, ops_port).await;

    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let demo = output_within(
        "facegate demo",
        DEMO_WITHIN,
        facegate(
            &test,
            &["demo"],
            &[
                ("FACEGATE_DEMO_VERIFIER_URL", verifier_url.clone()),
                ("FACEGATE_DEMO_RUN_ID", run_id.to_string()),
                ("FACEGATE_DEMO_KEEP_USERS", "true".into()),
            ],
        ),
    )
    .await;
    let story = text(&demo.stdout);
    assert!(
        demo.status.success(),
        "facegate demo failed ({}):\nstdout:\n{story}\nstderr:\n{}\nfacegate dev:\n{}",
        demo.status,
        text(&demo.stderr),
        tail(&dev.log)
    );
    let (alice, bob, mallory) = (
        format!("demo-{run_id}-alice"),
        format!("demo-{run_id}-bob"),
        format!("demo-{run_id}-mallory"),
    );
    // The key lines of the story, in order.
    let expected = [
        "[1/8] alice and bob sign up and register a photo each".to_string(),
        format!("{alice}: SignUp (confirmed by the PreSignUp trigger) and a password sign-in"),
        format!("{alice}: GET /v1/registrations/{alice} -> ACTIVE"),
        format!("{bob}: GET /v1/registrations/{bob} -> ACTIVE"),
        "[2/8] security ops subscribe a queue to the security-alerts topic".into(),
        format!("{mallory}: GET /v1/registrations/{mallory} -> REJECTED (duplicate)"),
        "security ops received: kind=duplicate-registration severity=".into(),
        format!("about {mallory}"),
        // Under the default policy: active liveness, with the frames of her clip.
        "[4/8] alice signs in with her face".into(),
        "InitiateAuth CUSTOM_AUTH -> liveness steps ".into(),
        "PUT the frames of her head-turn clip that show ".into(),
        "Cognito  -> IdToken, AccessToken, RefreshToken: alice is signed in".into(),
        "with her access token -> 200 OK".into(),
        "[5/8] someone tries to sign in as alice with bob's face, three times".into(),
        "NotAuthorizedException: three wrong answers end this sign-in".into(),
        "a fresh sign-in: NotAuthorizedException (locked".into(),
        "security ops received: kind=lockout severity=".into(),
        format!("about {alice}"),
        format!("GET /v1/registrations/{alice} -> 404 Not Found"),
        "[8/8] clean up".into(),
        format!("left in place (--keep-users): {bob} and {mallory}"),
        format!("erased {alice}: 0 face(s), 0 photo(s), 0 record(s)"),
        "every step behaved as described".into(),
    ];
    let mut rest = story.as_str();
    for line in &expected {
        let at = rest
            .find(line.as_str())
            .unwrap_or_else(|| panic!("the story lacks (or misorders) {line:?}:\n{story}"));
        rest = &rest[at + line.len()..];
    }
    assert_eq!(
        story.matches("wrong answer, another challenge").count(),
        2,
        "two impostor attempts with tries left, then the end:\n{story}"
    );
    assert_eq!(
        story.matches("as every liveness frame and answer").count(),
        3,
        "bob's photo held up for every step of three challenges:\n{story}"
    );
    assert_eq!(
        story.matches("alice is signed in").count(),
        1,
        "one genuine sign-in:\n{story}"
    );
    // The demo removed its own security-ops queue.
    let ops_queue = format!("{}-demo-{run_id}-security-ops", test.prefix);
    assert!(
        test.clients
            .sqs
            .get_queue_url()
            .queue_name(&ops_queue)
            .send()
            .await
            .is_err(),
        "the demo's queue {ops_queue} is still there"
    );

    // Bob is left; an operator erases him directly against the stack.
    let verifier = VerifierClient::new(&verifier_url, TOKEN);
    let registrations = format!("/v1/registrations/{bob}");
    let before = verifier.get(&registrations).await.expect("GET bob");
    assert_eq!(before.status, StatusCode::OK, "{}", before.body);
    let erase = output_within(
        "facegate erase",
        Duration::from_secs(60),
        facegate(
            &test,
            &["erase", &bob],
            &[("AWS_ENDPOINT_URL_REKOGNITION", engine_url.clone())],
        ),
    )
    .await;
    let erased = text(&erase.stdout);
    assert!(
        erase.status.success(),
        "facegate erase failed ({}):\n{erased}\n{}",
        erase.status,
        text(&erase.stderr)
    );
    assert!(
        erased.contains(&format!(
            "erased user {bob}: 1 face(s) from the collection, 1 photo(s) from the bucket"
        )),
        "erase reports what it removed:\n{erased}"
    );
    let after = verifier.get(&registrations).await.expect("GET bob");
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{}", after.body);
    let photos = test
        .clients
        .s3
        .list_objects_v2()
        .bucket(test.names.bucket())
        .prefix(format!("registrations/{bob}/"))
        .send()
        .await
        .expect("ListObjectsV2");
    assert!(photos.contents().is_empty(), "{:?}", photos.contents());

    // A wrong token: the demo stops at its first step, says which, and exits non-zero. Last,
    // because the users it leaves (their uploads need no token) would be duplicates of the next run's.
    let refused = output_within(
        "facegate demo with a wrong token",
        DEMO_WITHIN,
        facegate(
            &test,
            &["demo"],
            &[
                ("FACEGATE_DEMO_VERIFIER_URL", verifier_url.clone()),
                ("FACEGATE_VERIFIER_TOKEN", "not-the-token".into()),
                ("FACEGATE_DEMO_STEP_TIMEOUT_SECS", "10".into()),
            ],
        ),
    )
    .await;
    let refused_err = text(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a wrong token must fail the demo"
    );
    assert!(
        refused_err.contains("step 1/8 (alice and bob sign up and register a photo each) failed")
            && refused_err.contains("401"),
        "the failure names the step and the refusal:\n{refused_err}"
    );

    dev.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
