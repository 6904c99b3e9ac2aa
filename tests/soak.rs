//! `facegate bench soak` at a small scale, as a user runs it: the real binary, which starts
//! every role as its own process, registers 12 users, signs in 40 times (genuine and
//! impostor), SIGKILLs the indexer half-way through the uploads, and audits the end state.
//! The test holds it to exit 0 with every audit line PASS.
//!
//! Needs the emulator (`scripts/stack.sh start`; `AWS_ENDPOINT_URL` if it is not on 4566) and
//! `scripts/setup.sh` (models, ONNX Runtime).

use std::path::PathBuf;
use std::time::Duration;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_with_a_sigkilled_indexer_passes_its_audit() {
    let root = workspace_root();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_facegate"));
    command
        .args([
            "bench",
            "soak",
            "--registrations",
            "12",
            "--signins",
            "40",
            "--clients",
            "4",
            "--kill",
            "indexer",
            "--kill-after",
            "0.5",
            "--settle-secs",
            "90",
        ])
        .current_dir(&root)
        .env("FACEGATE_ENV", "local")
        .env("FACEGATE_LOG_FORMAT", "json")
        .env("FACEGATE_MODELS_DIR", root.join(".facegate/models"))
        // The children inherit these: short waits, so that what the SIGKILLed indexer held
        // comes back quickly and SIGTERM ends long polls at once.
        .env("FACEGATE_WORKER_WAIT_SECS", "1")
        .env("FACEGATE_WORKER_VISIBILITY_SECS", "5")
        .env("FACEGATE_WORKER_RETRY_BASE_MS", "200")
        .env("FACEGATE_WORKER_RETRY_MAX_SECS", "2")
        .env("FACEGATE_WORKER_DRAIN_SECS", "5")
        .env("FACEGATE_INDEXER_DEAD_LETTER_SWEEP_SECS", "2")
        .env("FACEGATE_DEDUP_DEAD_LETTER_SWEEP_SECS", "2")
        .env("FACEGATE_DLQ_CHECK_SECS", "2")
        // Settings a developer may have exported must not change the run under test.
        .env_remove("FACEGATE_SOAK_KILL")
        .env_remove("FACEGATE_LOCKOUT_THRESHOLD")
        .kill_on_drop(true);
    if std::env::var_os("ORT_DYLIB_PATH").is_none()
        && let Some(ort) = facegate_engine::face::find_onnxruntime(&root)
    {
        command.env("ORT_DYLIB_PATH", ort);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the soak ends within 4 minutes")
        .expect("the facegate binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("stdout:\n{stdout}\nstderr (last 4000 bytes):\n{}", {
        let start = stderr.len().saturating_sub(4000);
        stderr.get(start..).unwrap_or(&stderr)
    });
    assert!(
        output.status.success(),
        "facegate bench soak failed ({}); is the emulator running?\n{context}",
        output.status
    );
    let audit: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "FINAL AUDIT")
        .skip(1)
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .collect();
    assert_eq!(audit.len(), 8, "eight audit lines\n{context}");
    assert!(
        audit.iter().all(|l| l.starts_with("PASS")),
        "every audit line passes\n{context}"
    );
    assert!(
        stdout.contains("SIGKILLed the indexer"),
        "the indexer was killed mid-run\n{context}"
    );
    for role in ["engine", "indexer", "dedup", "alerts", "verifier"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(role) && l.contains("exit status: 0")),
            "a memory row for {role}, which exited 0\n{context}"
        );
    }
}
