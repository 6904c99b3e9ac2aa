//! `facegate bench soak` at a small scale, as a user runs it: the real binary, which starts its
//! own emulator (through `scripts/stack.sh`, on a free port, state kept) and every role as its
//! own process, registers 24 users (some of them twice) while 80 sign-ins (genuine and
//! impostor, half through the Cognito user pool and its trigger Lambda) run, and meanwhile
//! SIGKILLs every role once (engine, indexer, dedup, alerts, verifier, the trigger Lambda's
//! processes) and restarts the emulator once, on the schedule of a fixed seed. The test holds
//! it to exit 0 with every audit line PASS and every fault carried out.
//!
//! Needs `scripts/setup.sh` (the emulator's virtualenv, models, ONNX Runtime); it does not use
//! a running emulator.

use std::path::PathBuf;
use std::time::Duration;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_with_every_role_killed_passes_its_audit() {
    let root = workspace_root();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_facegate"));
    command
        .args([
            "bench",
            "soak",
            "--registrations",
            "24",
            "--signins",
            "80",
            "--clients",
            "4",
            "--reregister-percent",
            "20",
            "--kills-per-role",
            "1",
            "--emulator-restarts",
            "1",
            "--seed",
            "13",
            "--settle-secs",
            "90",
        ])
        .current_dir(&root)
        .env("FACEGATE_ENV", "local")
        .env("FACEGATE_LOG_FORMAT", "json")
        .env("FACEGATE_MODELS_DIR", root.join(".facegate/models"))
        // The children inherit these: short waits, so that what a SIGKILLed worker held comes
        // back quickly and SIGTERM ends long polls at once, and retries that outlast an engine
        // restart (1 + 2 + 4 + 8 s before a message's last delivery).
        .env("FACEGATE_WORKER_WAIT_SECS", "1")
        .env("FACEGATE_WORKER_VISIBILITY_SECS", "5")
        .env("FACEGATE_WORKER_RETRY_BASE_MS", "1000")
        .env("FACEGATE_WORKER_RETRY_MAX_SECS", "8")
        .env("FACEGATE_WORKER_DRAIN_SECS", "5")
        .env("FACEGATE_INDEXER_DEAD_LETTER_SWEEP_SECS", "2")
        .env("FACEGATE_DEDUP_DEAD_LETTER_SWEEP_SECS", "2")
        .env("FACEGATE_DLQ_CHECK_SECS", "2")
        // Settings a developer may have exported must not change the run under test.
        .env_remove("FACEGATE_SOAK_SEED")
        .env_remove("FACEGATE_SOAK_POOL_PERCENT")
        .env_remove("FACEGATE_LOCKOUT_THRESHOLD")
        .kill_on_drop(true);
    if std::env::var_os("ORT_DYLIB_PATH").is_none()
        && let Some(ort) = facegate_engine::face::find_onnxruntime(&root)
    {
        command.env("ORT_DYLIB_PATH", ort);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the soak ends within 5 minutes")
        .expect("the facegate binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("stdout:\n{stdout}\nstderr (last 4000 bytes):\n{}", {
        let start = stderr.len().saturating_sub(4000);
        stderr.get(start..).unwrap_or(&stderr)
    });
    assert!(
        output.status.success(),
        "facegate bench soak failed ({})\n{context}",
        output.status
    );
    assert!(
        stdout.starts_with("chaos schedule (seed 13;"),
        "the schedule is printed first, with its seed\n{context}"
    );
    let audit: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "FINAL AUDIT")
        .skip(1)
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .collect();
    assert_eq!(audit.len(), 10, "ten audit lines\n{context}");
    assert!(
        audit.iter().all(|l| l.starts_with("PASS")),
        "every audit line passes\n{context}"
    );
    let happened: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "what happened:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    for fault in [
        "SIGKILL the engine",
        "SIGKILL the indexer",
        "SIGKILL the dedup",
        "SIGKILL the alerts",
        "SIGKILL the verifier",
        "SIGKILL the trigger Lambda",
        "restart the emulator (state kept)",
    ] {
        assert_eq!(
            happened.iter().filter(|l| l.contains(fault)).count(),
            1,
            "{fault} once\n{context}"
        );
    }
    assert!(
        happened
            .iter()
            .any(|l| l.contains("the emulator ran the function again")),
        "a new trigger Lambda process after the SIGKILL\n{context}"
    );
    for role in ["engine", "indexer", "dedup", "alerts", "verifier"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(role)
                && l.contains("exit status: 0")
                && l.split_whitespace().nth(3) == Some("2")),
            "a memory row for {role}, two incarnations, which exited 0\n{context}"
        );
    }
}
