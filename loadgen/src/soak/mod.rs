//! `facegate bench soak`: the whole system under sustained mixed load, every process of it
//! killed on a seeded schedule, and an audit of the end state.
//!
//! 1. [`emulator`]: the soak's own AWS emulator (ministack through `scripts/stack.sh`, state
//!    kept, on a free port), so the chaos can restart it without disturbing anyone.
//! 2. [`fleet`]: starts `facegate engine` (models from `--models-dir`, collections in a fresh
//!    run folder), provisions the stack `fg-soak-<random>` with `facegate provision` (user
//!    pool and trigger Lambda included; its report goes to the run folder), then `facegate
//!    indexer`, `dedup` (policy `flag`: users are variants of a dozen people, so duplicates are
//!    by design and still become ACTIVE), `alerts` and `verifier`, and waits until each says it
//!    is ready. The run folder (`$TMPDIR/fg-soak-<random>`: every child's log, the emulator's
//!    state, the engine's collections) is removed after a passing run and kept otherwise.
//! 3. [`feeds`]: queues of the soak's own on `auth-events` and `security-alerts`.
//! 4. At the same time: [`registrations`] (the [`cast`]'s uploads, sign-ups in the pool, and
//!    re-registrations) and [`signins`] (genuine and impostor attempts, through the pool or
//!    over the verifier's HTTP trigger routes, to users the roster shows ACTIVE), while the
//!    [`chaos`] schedule (printed first, `--seed` repeats it) SIGKILLs and restarts every
//!    role, the trigger Lambda's processes ([`lambda`]), and restarts the emulator.
//! 5. The registrations settle and the queues drain; [`audit`] reads the end state and the
//!    feeds; every role gets SIGTERM.
//! 6. [`report`]: throughput and latency per flow, how the sign-ins ended, the chaos as it
//!    happened, peak memory per role, how each role exited, the audit. The command fails when
//!    any audit line does.
//!
//! Memory is each child's own `VmHWM` (peak RSS), sampled from `/proc` every 250 ms and just
//! before it is killed or stopped, the maximum over every incarnation.

mod audit;
mod cast;
mod chaos;
mod emulator;
mod feeds;
mod fleet;
mod lambda;
mod registrations;
mod report;
mod retry;
mod signins;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use facegate_engine::face::ModelSettings;
use facegate_shared::aws::AwsSettings;
use facegate_shared::config::{Prefix, StackSettings};
use facegate_shared::registration::RegistrationState;
use facegate_shared::stack::{Stack, StackArgs};
use facegate_shared::user_pool::UserPool;
use facegate_verifier::access_token::{AccessTokens, JwksUrl};
use tokio_util::sync::CancellationToken;

use crate::client::VerifierClient;
use crate::cognito_app::CognitoApp;
use cast::Cast;
use chaos::{Clock, Fault, Happened, Schedule};
use emulator::Emulator;
use fleet::{Fleet, FleetSettings, Role};
use lambda::TriggerLambda;
use registrations::{Roster, Uploaders};
use report::{Flow, Report};
use retry::Patience;
use signins::SignIns;

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
    /// Registrations, one user each (re-registrations come on top).
    #[arg(long, env = "FACEGATE_SOAK_REGISTRATIONS", default_value_t = 1000)]
    pub registrations: usize,
    /// Sign-in attempts, made while the registrations flow.
    #[arg(long, env = "FACEGATE_SOAK_SIGNINS", default_value_t = 5000)]
    pub signins: usize,
    /// Concurrent clients of each flow.
    #[arg(long, env = "FACEGATE_SOAK_CLIENTS", default_value_t = 8)]
    pub clients: usize,
    /// Share of the sign-ins by impostors, in percent.
    #[arg(long, env = "FACEGATE_SOAK_IMPOSTOR_PERCENT", default_value_t = 20,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub impostor_percent: u8,
    /// Share of the users impostors aim at, in percent (at least one user). The alerts worker
    /// locks them; the other users only ever see genuine attempts.
    #[arg(long, env = "FACEGATE_SOAK_IMPOSTOR_TARGET_PERCENT", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub impostor_target_percent: u8,
    /// Share of the users who sign up in the Cognito user pool and sign in through it (and
    /// so through the trigger Lambda), in percent; the others sign in over the verifier's
    /// HTTP trigger routes.
    #[arg(long, env = "FACEGATE_SOAK_POOL_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub pool_percent: u8,
    /// Share of the other users who register a second photo once the first is ACTIVE (the
    /// old face is then deleted), in percent.
    #[arg(long, env = "FACEGATE_SOAK_REREGISTER_PERCENT", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub reregister_percent: u8,
    /// The chaos schedule's seed [default: a random one, printed].
    #[arg(long, env = "FACEGATE_SOAK_SEED")]
    pub seed: Option<u64>,
    /// SIGKILLs of every role (engine, indexer, dedup, alerts, verifier) and of the trigger
    /// Lambda's processes during the run.
    #[arg(long, env = "FACEGATE_SOAK_KILLS_PER_ROLE", default_value_t = 2)]
    pub kills_per_role: u32,
    /// Restarts of the emulator (state kept) during the run.
    #[arg(long, env = "FACEGATE_SOAK_EMULATOR_RESTARTS", default_value_t = 1)]
    pub emulator_restarts: u32,
    /// The script that starts and stops the emulator (`start`, `stop`; port, state folder and
    /// persistence from `FACEGATE_STACK_*`).
    #[arg(
        long,
        env = "FACEGATE_SOAK_STACK_SCRIPT",
        default_value = "scripts/stack.sh"
    )]
    pub stack_script: PathBuf,
    /// Face-service calls per second for the whole stack: sized for the engine, not for
    /// Rekognition's default quota.
    #[arg(long, env = "FACEGATE_SOAK_FACE_CALLS_PER_SECOND", default_value_t = NonZeroU32::new(1000).expect("non-zero"))]
    pub face_calls_per_second: NonZeroU32,
    /// How long a client keeps retrying one call or one sign-in while its server is down, in
    /// seconds.
    #[arg(long, env = "FACEGATE_SOAK_PATIENCE_SECS", default_value_t = 180)]
    pub patience_secs: u64,
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

/// What the chaos loop acts on.
struct Chaos<'a> {
    fleet: &'a mut Fleet,
    emulator: &'a mut Emulator,
    lambda: TriggerLambda,
    schedule: &'a Schedule,
    /// Which events of the schedule were carried out.
    done: Vec<bool>,
    happened: Vec<Happened>,
}

impl Chaos<'_> {
    /// Carries out every event whose time has come on its clock, in the schedule's order (the
    /// two clocks run independently: a fault due on one does not wait for the other).
    async fn act(
        &mut self,
        progress: impl Fn(Clock) -> f64,
        since: Instant,
    ) -> Result<(), SoakError> {
        for (i, event) in self.schedule.events.iter().enumerate() {
            let now = progress(event.clock);
            if self.done[i] || now < event.at {
                continue;
            }
            let started = Instant::now();
            let mut lambda = None;
            match event.fault {
                Fault::Kill(role) => self.fleet.kill_and_restart(role).await?,
                Fault::KillLambda => {
                    lambda = Some(self.lambda.kill(Duration::from_secs(60)).await?);
                }
                Fault::RestartEmulator => {
                    self.emulator.restart().await?;
                }
            }
            let happened = Happened {
                event: *event,
                progress: now,
                at: started,
                after: started - since,
                took: started.elapsed(),
                lambda,
            };
            tracing::warn!("chaos: {happened}");
            self.done[i] = true;
            self.happened.push(happened);
        }
        Ok(())
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
    let cast = Arc::new(Cast::new(
        args.registrations,
        photos.len(),
        args.impostor_target_percent,
        args.reregister_percent,
        args.pool_percent,
    )?);
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let schedule = Schedule::new(seed, args.kills_per_role, args.emulator_restarts);
    // Printed before anything runs, so an interrupted run can still be repeated.
    println!("{schedule}");
    tracing::info!(%prefix, run_dir = %run_dir.display(), photos = photos.len(), seed, "soak starting");
    let patience = Patience {
        call: Duration::from_secs(args.patience_secs),
        settle: Duration::from_secs(args.settle_secs + cast.registrations() as u64),
    };

    let mut emulator = Emulator::start(&absolute(&args.stack_script)?, &run_dir).await?;
    let endpoint = emulator.endpoint();
    // Every AWS service of the run is the soak's emulator, whatever the caller pointed at.
    let aws = AwsSettings {
        deployment: facegate_shared::aws::Deployment::Local,
        region: args.aws.region.clone(),
        endpoint_url: Some(endpoint.clone()),
        rekognition_access_key_id: args.aws.rekognition_access_key_id.clone(),
        rekognition_secret_access_key: args.aws.rekognition_secret_access_key.clone(),
        ..AwsSettings::local()
    };
    let token = format!("soak-{}", uuid::Uuid::new_v4().simple());
    let mut fleet = Fleet::new(FleetSettings {
        prefix: prefix.clone(),
        aws: aws.clone(),
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
    let stack = Stack::connect(&StackArgs {
        aws: AwsSettings {
            endpoint_url_rekognition: fleet.engine_url(),
            ..aws
        },
        stack: StackSettings::with_prefix(prefix.clone()),
    })
    .await?;
    for role in [Role::Indexer, Role::Dedup, Role::Alerts, Role::Verifier] {
        fleet.start(role).await?;
    }
    let feeds = feeds::Feeds::subscribe(&stack).await?;
    let pool = UserPool::find(&stack.clients.cognito, &stack.names)
        .await
        .map_err(|e| SoakError::aws("finding the user pool", e))?;
    let app = CognitoApp::new(stack.clients.cognito.clone(), pool.clone());
    let jwks = JwksUrl::new(pool.jwks_url(Some(&endpoint)))
        .map_err(|e| SoakError::Run(format!("the pool's JWKS: {e}")))?;
    let tokens = AccessTokens::new(&pool, Box::new(jwks));
    let verifier_url = fleet
        .verifier_url()
        .ok_or_else(|| SoakError::Run("the verifier is not running".into()))?;

    // The load: both flows at once, the roster following the registrations.
    let roster = Arc::new(Roster::default());
    // The sign-in clients' selfies are made before the clock starts.
    let sign_ins = Arc::new(SignIns::new(
        VerifierClient::new(verifier_url, token.clone()),
        app.clone(),
        tokens,
        &photos,
        cast.clone(),
        roster.clone(),
        args.impostor_percent,
        patience,
    )?);
    let stop_roster = CancellationToken::new();
    let roster_task = tokio::spawn({
        let (roster, stack, stop) = (roster.clone(), stack.clone(), stop_roster.clone());
        async move { roster.follow(&stack, stop).await }
    });
    let uploaded = Arc::new(AtomicUsize::new(0));
    let attempted = Arc::new(AtomicUsize::new(0));
    let started = Utc::now();
    let load_started = Instant::now();
    let mut upload_task = tokio::spawn(registrations::upload(
        Uploaders {
            stack: stack.clone(),
            app: app.clone(),
            password: format!("Soak-{}-Pw1!", uuid::Uuid::new_v4().simple()),
            photos: photos.clone(),
            cast: cast.clone(),
            roster: roster.clone(),
            uploaded: uploaded.clone(),
            patience,
        },
        args.clients,
    ));
    let mut signin_task = tokio::spawn(signins::run(
        sign_ins,
        args.signins,
        args.clients,
        attempted.clone(),
    ));

    let mut chaos = Chaos {
        fleet: &mut fleet,
        emulator: &mut emulator,
        lambda: TriggerLambda::new(
            stack.clients.lambda.clone(),
            &stack.names.trigger_function(),
        ),
        schedule: &schedule,
        done: vec![false; schedule.events.len()],
        happened: Vec::new(),
    };
    let total_registrations = cast.registrations();
    let progress = |clock: Clock| match clock {
        Clock::Registrations => roster.finals() as f64 / total_registrations.max(1) as f64,
        Clock::SignIns => attempted.load(Ordering::Relaxed) as f64 / args.signins.max(1) as f64,
    };
    let mut uploads = None;
    let mut attempts = None;
    let mut signins_ended = None;
    let mut last_log = Instant::now();
    loop {
        chaos.act(&progress, load_started).await?;
        // Every fault is carried out: one still due on the registrations' clock waits for the
        // pipeline, which keeps working after the uploads end.
        let chaos_done = chaos.happened.len() == schedule.events.len();
        if uploads.is_some()
            && attempts.is_some()
            && (chaos_done || load_started.elapsed() > patience.settle)
        {
            break;
        }
        tokio::select! {
            joined = &mut upload_task, if uploads.is_none() => {
                uploads = Some(joined.map_err(|e| SoakError::Run(e.to_string()))??);
            }
            joined = &mut signin_task, if attempts.is_none() => {
                attempts = Some(joined.map_err(|e| SoakError::Run(e.to_string()))??);
                signins_ended = Some(load_started.elapsed());
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                uploaded = uploaded.load(Ordering::Relaxed),
                final_ = roster.finals(),
                registrations = total_registrations,
                signed = attempted.load(Ordering::Relaxed),
                signins = args.signins,
                faults = chaos.happened.len(),
                "load so far"
            );
            last_log = Instant::now();
        }
    }
    let happened = chaos.happened;
    let (uploads, attempts) = (uploads.unwrap_or_default(), attempts.unwrap_or_default());
    let signin_wall = signins_ended.unwrap_or_else(|| load_started.elapsed());

    // Settle, drain, read the end state, stop everything.
    registrations::settle(&roster, &uploads, patience.settle).await;
    audit::drain(&stack, Duration::from_secs(args.settle_secs)).await?;
    stop_roster.cancel();
    let _ = roster_task.await;
    let records = registrations::records(&stack).await?;
    let heard = feeds.read(&stack).await?;
    let evidence = audit::gather(&stack, heard).await?;
    let mut exits = fleet
        .terminate(&[Role::Indexer, Role::Dedup, Role::Alerts, Role::Verifier])
        .await;
    exits.extend(fleet.terminate(&[Role::Engine]).await);
    emulator.stop().await?;

    let mut last_final = started;
    let mut to_active = Vec::new();
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
        }
    }
    let registration_flow = Flow::new(
        to_active,
        uploads.len(),
        (last_final - started).to_std().unwrap_or_default(),
    );
    let sign_ins = Flow::new(
        attempts.iter().map(|a| a.sequence).collect(),
        attempts.len(),
        signin_wall,
    );
    let door = |channel: signins::Channel| {
        let samples: Vec<Duration> = attempts
            .iter()
            .filter(|a| a.channel == channel)
            .map(|a| a.sequence)
            .collect();
        Flow::new(samples.clone(), samples.len(), signin_wall)
    };
    let (pool_sign_ins, http_sign_ins) =
        (door(signins::Channel::Pool), door(signins::Channel::Http));
    let verify_samples: Vec<Duration> = attempts.iter().filter_map(|a| a.verify).collect();
    let verifies = Flow::new(verify_samples.clone(), verify_samples.len(), signin_wall);
    let targets = cast
        .people
        .iter()
        .filter(|p| p.part == cast::Part::Target)
        .map(|p| p.user.clone())
        .collect();
    let genuine_refusals =
        audit::refusal_reasons(&attempts, &evidence.heard, signins::Kind::Genuine);
    let lines = audit::judge(
        &evidence,
        &uploads,
        &attempts,
        &audit::Run {
            targets: &targets,
            schedule: &schedule,
            happened: &happened,
            exits: &exits,
        },
    );

    let mut report = Report {
        prefix: prefix.to_string(),
        clients: args.clients,
        impostor_percent: args.impostor_percent,
        impostor_targets: targets.len(),
        schedule,
        happened,
        registrations: registration_flow,
        uploads,
        sign_ins,
        pool_sign_ins,
        http_sign_ins,
        verifies,
        attempts,
        genuine_refusals,
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
