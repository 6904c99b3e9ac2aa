//! `facegate bench soak`: the whole system under sustained load, every role its own process,
//! one of them SIGKILLed half-way, and an audit of the end state.
//!
//! 1. [`fleet`]: starts `facegate engine` (models from `--models-dir`, collections in a fresh
//!    run folder), provisions a fresh stack `fg-soak-<random>` on the configured AWS endpoints
//!    with `facegate provision` (its report goes to the run folder), then starts `facegate
//!    indexer`, `dedup` (policy `flag`: users are variants of a dozen people, so duplicates are
//!    by design and still become ACTIVE), `alerts` and `verifier`, and waits until each says it
//!    is ready. The run folder (`$TMPDIR/fg-soak-<random>`: every child's log, the engine's
//!    collections) is removed after a passing run and kept otherwise.
//! 2. [`registrations`]: N uploads by concurrent clients, then every registration final.
//! 3. [`signins`]: M attempts, genuine and impostor mixed, by concurrent clients, through the
//!    Cognito trigger sequence over the verifier's HTTP API, once the users are ACTIVE.
//! 4. Half-way through its flow (`--kill-after`), the `--kill` role is SIGKILLed and started
//!    again: the indexer or dedup during the uploads, the alerts worker during the sign-ins.
//! 5. The queues drain; [`audit`] reads the end state; every role gets SIGTERM.
//! 6. [`report`]: throughput and latency per flow, peak memory per role, how each role
//!    exited, the audit. The command fails when any audit line does.
//!
//! Memory is each child's own `VmHWM` (peak RSS), sampled from `/proc` every 250 ms and just
//! before it is killed or stopped, the maximum over every incarnation.

mod audit;
mod fleet;
mod registrations;
mod report;
mod signins;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::VerifierClient;
use chrono::Utc;
use facegate_engine::face::ModelSettings;
use facegate_shared::aws::AwsSettings;
use facegate_shared::config::{Prefix, StackSettings};
use facegate_shared::registration::RegistrationState;
use facegate_shared::stack::{Stack, StackArgs};
use tokio::task::JoinHandle;

use fleet::{Fleet, FleetSettings, Role};
use report::{Flow, Report};

/// The role `--kill` SIGKILLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KillTarget {
    /// During the uploads.
    Indexer,
    /// During the uploads.
    Dedup,
    /// During the sign-ins.
    Alerts,
    /// Kill nothing.
    None,
}

impl KillTarget {
    fn role(self) -> Option<Role> {
        match self {
            KillTarget::Indexer => Some(Role::Indexer),
            KillTarget::Dedup => Some(Role::Dedup),
            KillTarget::Alerts => Some(Role::Alerts),
            KillTarget::None => None,
        }
    }
}

/// `facegate bench soak`.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub aws: AwsSettings,
    #[command(flatten)]
    pub models: ModelSettings,
    /// Folder of photos named `<person>_<n>.(jpg|png)` (at least two people).
    #[arg(
        long,
        env = "FACEGATE_SOAK_PHOTOS",
        default_value = "tests/fixtures/faces"
    )]
    pub photos: PathBuf,
    /// Registrations, one user each.
    #[arg(long, env = "FACEGATE_SOAK_REGISTRATIONS", default_value_t = 1000)]
    pub registrations: usize,
    /// Sign-in attempts, once the registrations are final.
    #[arg(long, env = "FACEGATE_SOAK_SIGNINS", default_value_t = 5000)]
    pub signins: usize,
    /// Concurrent clients of each flow.
    #[arg(long, env = "FACEGATE_SOAK_CLIENTS", default_value_t = 8)]
    pub clients: usize,
    /// Share of the sign-ins by impostors, in percent.
    #[arg(long, env = "FACEGATE_SOAK_IMPOSTOR_PERCENT", default_value_t = 20,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub impostor_percent: u8,
    /// Share of the ACTIVE users impostors aim at, in percent (at least one user). The alerts
    /// worker locks them; the other users only ever see genuine attempts.
    #[arg(long, env = "FACEGATE_SOAK_IMPOSTOR_TARGET_PERCENT", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub impostor_target_percent: u8,
    /// The role SIGKILLed (and started again) mid-run.
    #[arg(long, env = "FACEGATE_SOAK_KILL", value_enum, default_value_t = KillTarget::Indexer)]
    pub kill: KillTarget,
    /// When: after this share (0-1) of its flow (uploads for indexer and dedup, sign-ins for
    /// alerts).
    #[arg(long, env = "FACEGATE_SOAK_KILL_AFTER", default_value_t = 0.5)]
    pub kill_after: f64,
    /// Face-service calls per second each role may make: sized for the engine, not for
    /// Rekognition's default quota.
    #[arg(long, env = "FACEGATE_SOAK_FACE_CALLS_PER_SECOND", default_value_t = NonZeroU32::new(1000).expect("non-zero"))]
    pub face_calls_per_second: NonZeroU32,
    /// Longest wait for the registrations to be final and for the queues to drain, in seconds
    /// beyond one second per registration.
    #[arg(long, env = "FACEGATE_SOAK_SETTLE_SECS", default_value_t = 300)]
    pub settle_secs: u64,
}

/// Why the soak could not run to its audit, or failed it.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("facegate {role} {problem} (log: {})", log.display())]
    Role {
        role: &'static str,
        problem: String,
        log: PathBuf,
    },
    #[error("{what}")]
    Aws {
        what: &'static str,
        #[source]
        source: facegate_shared::worker::BoxError,
    },
    #[error("loading the photos")]
    Photos(#[from] crate::pipeline::BenchError),
    #[error("connecting to the soak's stack")]
    Stack(#[from] facegate_shared::stack::StackError),
    #[error("{0}")]
    Run(String),
    #[error("interrupted: every role was killed")]
    Interrupted,
    #[error("{failed} audit line(s) failed")]
    AuditFailed { failed: usize },
}

impl SoakError {
    pub fn aws(what: &'static str, source: impl Into<facegate_shared::worker::BoxError>) -> Self {
        Self::Aws {
            what,
            source: source.into(),
        }
    }
}

/// Runs the soak, prints its report, and fails when the audit does. SIGINT or SIGTERM stops
/// it; the children are killed on every way out.
pub async fn main(args: SoakArgs) -> Result<(), SoakError> {
    let stop = facegate_shared::shutdown::on_signal();
    let report = tokio::select! {
        report = run(args) => report?,
        () = stop.cancelled() => return Err(SoakError::Interrupted),
    };
    print!("{report}");
    let failed = report.audit.iter().filter(|l| !l.passed).count();
    if failed > 0 {
        return Err(SoakError::AuditFailed { failed });
    }
    Ok(())
}

/// Absolute, so that the children do not depend on the working directory.
fn absolute(path: &std::path::Path) -> Result<PathBuf, SoakError> {
    std::path::absolute(path).map_err(|source| SoakError::Io {
        what: format!("resolving {}", path.display()),
        source,
    })
}

/// Waits for `task` while watching `progress`: SIGKILLs and restarts `kill` once `progress`
/// reaches `kill_at`, and logs progress every few seconds.
async fn watch<T>(
    fleet: &mut Fleet,
    mut task: JoinHandle<Result<T, SoakError>>,
    what: &'static str,
    progress: &AtomicUsize,
    total: usize,
    kill: Option<(Role, usize)>,
) -> Result<(T, Option<String>), SoakError> {
    let mut killed = None;
    let mut last_log = Instant::now();
    loop {
        let finished = tokio::select! {
            joined = &mut task => Some(joined.map_err(|e| SoakError::Run(e.to_string()))??),
            () = tokio::time::sleep(Duration::from_millis(100)) => None,
        };
        let done = progress.load(Ordering::Relaxed);
        if let Some((role, at)) = kill
            && killed.is_none()
            && done >= at
        {
            fleet.kill_and_restart(role).await?;
            killed = Some(format!(
                "SIGKILLed the {} after {done} of {total} {what} and restarted it",
                role.name()
            ));
        }
        if let Some(value) = finished {
            return Ok((value, killed));
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(done, total, "{what} so far");
            last_log = Instant::now();
        }
    }
}

/// Every step of the soak; the report.
async fn run(args: SoakArgs) -> Result<Report, SoakError> {
    let prefix: Prefix = format!(
        "fg-soak-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .parse()
    .map_err(|e: facegate_shared::config::NameError| SoakError::Run(e.to_string()))?;
    let run_dir = std::env::temp_dir().join(prefix.as_str());
    fleet::create_dir(&run_dir)?;
    let photos = Arc::new(crate::pipeline::load_photos(&args.photos)?);
    tracing::info!(%prefix, run_dir = %run_dir.display(), photos = photos.len(), "soak starting");

    let token = format!("soak-{}", uuid::Uuid::new_v4().simple());
    let mut fleet = Fleet::new(FleetSettings {
        prefix: prefix.clone(),
        aws: args.aws.clone(),
        face_calls_per_second: args.face_calls_per_second.get(),
        run_dir: run_dir.clone(),
        models_dir: absolute(&args.models.models_dir)?,
        ort_dylib_path: args
            .models
            .ort_dylib_path
            .as_deref()
            .map(absolute)
            .transpose()?,
        engine_workers: args.models.workers,
        verifier_token: token.clone(),
    });
    fleet.start(Role::Engine).await?;
    fleet.provision().await?;
    let mut aws = args.aws.clone();
    aws.endpoint_url_rekognition = fleet.engine_url();
    let stack = Stack::connect(&StackArgs {
        aws,
        stack: StackSettings::with_prefix(prefix.clone()),
    })
    .await?;
    for role in [Role::Indexer, Role::Dedup, Role::Alerts, Role::Verifier] {
        fleet.start(role).await?;
    }
    let kill_role = args.kill.role();
    let kill_at =
        |total: usize| ((total as f64 * args.kill_after.clamp(0.0, 1.0)).ceil() as usize).max(1);

    // Registrations.
    let uploaded = Arc::new(AtomicUsize::new(0));
    let started = Utc::now();
    let upload_task = tokio::spawn({
        let (stack, photos, uploaded) = (stack.clone(), photos.clone(), uploaded.clone());
        let (count, clients) = (args.registrations, args.clients);
        async move { registrations::upload(&stack, photos, count, clients, uploaded).await }
    });
    let kill = kill_role
        .filter(|r| matches!(r, Role::Indexer | Role::Dedup))
        .map(|r| (r, kill_at(args.registrations)));
    let (uploads, mut killed) = watch(
        &mut fleet,
        upload_task,
        "uploads",
        &uploaded,
        args.registrations,
        kill,
    )
    .await?;
    let within = Duration::from_secs(args.settle_secs + args.registrations as u64);
    let records = registrations::settle(&stack, &uploads, within).await?;
    let mut last_final = started;
    let mut to_active = Vec::new();
    let mut active = Vec::new();
    for upload in &uploads {
        let Some([record]) = records
            .get(&(upload.user.clone(), upload.upload.clone()))
            .map(Vec::as_slice)
        else {
            continue;
        };
        if record.state.is_final() {
            last_final = last_final.max(record.updated_at);
        }
        if record.state == RegistrationState::Active {
            to_active.push(
                (record.updated_at - upload.put_at)
                    .to_std()
                    .unwrap_or_default(),
            );
            active.push((upload.user.clone(), upload.photo));
        }
    }
    active.sort();
    let registration_flow = Flow::new(
        to_active,
        uploads.len(),
        (last_final - started).to_std().unwrap_or_default(),
    );
    tracing::info!(
        uploads = uploads.len(),
        active = active.len(),
        per_second = registration_flow.per_second,
        "registrations final"
    );

    // Sign-ins.
    let plan = Arc::new(signins::Plan::new(
        &photos,
        &active,
        args.signins,
        args.impostor_percent,
        args.impostor_target_percent,
    )?);
    let verifier_url = fleet
        .verifier_url()
        .ok_or_else(|| SoakError::Run("the verifier is not running".into()))?;
    let client = VerifierClient::new(verifier_url, token.clone());
    let attempted = Arc::new(AtomicUsize::new(0));
    let signins_started = Instant::now();
    let signin_task = tokio::spawn({
        let (plan, attempted, clients) = (plan.clone(), attempted.clone(), args.clients);
        async move { signins::run(client, plan, clients, attempted).await }
    });
    let kill = kill_role
        .filter(|r| *r == Role::Alerts)
        .map(|r| (r, kill_at(args.signins)));
    let (attempts, killed_alerts) = watch(
        &mut fleet,
        signin_task,
        "sign-ins",
        &attempted,
        args.signins,
        kill,
    )
    .await?;
    let signin_wall = signins_started.elapsed();
    killed = killed.or(killed_alerts);
    let sign_ins = Flow::new(
        attempts.iter().map(|a| a.sequence).collect(),
        attempts.len(),
        signin_wall,
    );
    let verify_samples: Vec<Duration> = attempts.iter().filter_map(|a| a.verify).collect();
    let verifies = Flow::new(verify_samples.clone(), verify_samples.len(), signin_wall);

    // Drain, read the end state, stop everything.
    let failures = attempts.iter().filter(|a| a.verify_failed).count() as i64;
    audit::drain(&stack, failures, Duration::from_secs(args.settle_secs)).await?;
    let evidence = audit::gather(&stack, &signins::locked_out(&attempts)).await?;
    let mut exits = fleet
        .terminate(&[Role::Indexer, Role::Dedup, Role::Alerts, Role::Verifier])
        .await;
    exits.extend(fleet.terminate(&[Role::Engine]).await);
    let lines = audit::judge(&evidence, &uploads, &attempts, &exits);

    let mut report = Report {
        prefix: prefix.to_string(),
        clients: args.clients,
        impostor_percent: args.impostor_percent,
        impostor_targets: plan.targets.len(),
        kill: killed,
        registrations: registration_flow,
        sign_ins,
        verifies,
        attempts,
        memory: fleet.memory(),
        exits,
        audit: lines,
        kept: None,
    };
    if report.passed() {
        let _ = std::fs::remove_dir_all(&run_dir);
    } else {
        report.kept = Some(run_dir);
    }
    Ok(report)
}
