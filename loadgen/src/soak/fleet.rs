//! The soak's fleet: every role as its own child process of this executable (`facegate engine`,
//! `indexer`, `dedup`, `alerts`, `verifier`), as each would run in its own container.
//!
//! Each child gets its settings the way a container would, from the environment: the stack's
//! prefix, the AWS endpoints this process resolved, the engine's URL, a face-service budget
//! sized for the engine rather than Rekognition's quota, and loopback ports of its own. Every
//! other setting (`FACEGATE_WORKER_*`, `FACEGATE_LOCKOUT_*`, ...) is inherited from this
//! process's environment, so a soak runs the roles exactly as configured.
//!
//! A role keeps its loopback address across restarts, as a container keeps its service's
//! address: the engine's URL is in the trigger Lambda's environment and every worker's, the
//! verifier's in every client.
//!
//! A child's output goes to `<run dir>/<role>.log`. Children are killed when their handle is
//! dropped (every early exit of the soak); a normal end sends SIGTERM and reports how each
//! exited.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use facegate_shared::aws::{AwsSettings, Service};
use facegate_shared::config::Prefix;
use facegate_shared::measure::Memory;
use tokio::process::{Child, Command};

use super::SoakError;

/// How long a role may take to become ready (the engine loads its models first).
const READY_WITHIN: Duration = Duration::from_secs(180);
/// How long a role may take to exit after SIGTERM: the grace period of ECS and Kubernetes.
pub const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// A role of the fleet, in start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Engine,
    Indexer,
    Dedup,
    Alerts,
    Verifier,
}

impl Role {
    /// The subcommand, and the name in reports and log files.
    pub fn name(self) -> &'static str {
        match self {
            Role::Engine => "engine",
            Role::Indexer => "indexer",
            Role::Dedup => "dedup",
            Role::Alerts => "alerts",
            Role::Verifier => "verifier",
        }
    }
}

/// What every child shares: the stack, where AWS and the engine are, the face-service budget.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    pub prefix: Prefix,
    pub aws: AwsSettings,
    pub face_calls_per_second: u32,
    /// Where logs and the engine's collections go.
    pub run_dir: PathBuf,
    pub models_dir: PathBuf,
    pub ort_dylib_path: Option<PathBuf>,
    pub engine_workers: usize,
    pub verifier_token: String,
}

/// How often every child's memory is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Memory per role over every incarnation, read every [`SAMPLE_EVERY`] and right before a
/// child is killed or stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoleMemory {
    /// The running incarnation.
    pid: Option<u32>,
    /// Highest `VmHWM` of any incarnation.
    pub peak_kib: u64,
    /// `VmRSS` at the last sample.
    pub last_rss_kib: u64,
    pub incarnations: u32,
}

/// How one role ended after SIGTERM.
#[derive(Clone, Debug)]
pub struct ExitReport {
    pub role: Role,
    /// `None`: still running after [`EXIT_WITHIN`] (then SIGKILLed).
    pub status: Option<ExitStatus>,
    pub after: Duration,
}

impl ExitReport {
    pub fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

struct Running {
    child: Child,
    /// Where it answers: the engine's API, the verifier's API, a worker's ops endpoint.
    addr: SocketAddr,
}

type MemoryBook = Arc<Mutex<BTreeMap<Role, RoleMemory>>>;

/// The running children.
pub struct Fleet {
    settings: FleetSettings,
    running: BTreeMap<Role, Running>,
    /// Each role's address, chosen at its first start and kept.
    addrs: BTreeMap<Role, SocketAddr>,
    memory: MemoryBook,
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // The children themselves go with `running` (kill on drop).
        self.sampler.abort();
    }
}

impl Fleet {
    pub fn new(settings: FleetSettings) -> Self {
        let memory = MemoryBook::default();
        let sampler = tokio::spawn({
            let memory = memory.clone();
            async move {
                loop {
                    tokio::time::sleep(SAMPLE_EVERY).await;
                    sample(&memory);
                }
            }
        });
        Self {
            settings,
            running: BTreeMap::new(),
            addrs: BTreeMap::new(),
            memory,
            sampler,
        }
    }

    /// The engine's URL (what `AWS_ENDPOINT_URL_REKOGNITION` should be).
    pub fn engine_url(&self) -> Option<String> {
        self.url(Role::Engine)
    }

    /// The verifier's base URL.
    pub fn verifier_url(&self) -> Option<String> {
        self.url(Role::Verifier)
    }

    fn url(&self, role: Role) -> Option<String> {
        self.running
            .get(&role)
            .map(|r| format!("http://{}", r.addr))
    }

    pub fn log_path(&self, role: Role) -> PathBuf {
        self.settings.run_dir.join(format!("{}.log", role.name()))
    }

    /// Starts `role` (on its address of before, if it ran before) and waits until it says it
    /// is ready.
    pub async fn start(&mut self, role: Role) -> Result<(), SoakError> {
        let addr = match self.addrs.get(&role) {
            Some(addr) => *addr,
            None => free_port()?,
        };
        self.addrs.insert(role, addr);
        let log = self.log_path(role);
        let mut command = self.command(role, addr)?;
        let (file, err_file) = log_files(&log)?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .spawn()
            .map_err(|source| SoakError::Io {
                what: format!("starting facegate {}", role.name()),
                source,
            })?;
        let path = if role == Role::Engine {
            "/healthz"
        } else {
            "/readyz"
        };
        let url = format!("http://{addr}{path}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SoakError::Role {
                    role: role.name(),
                    problem: format!("exited {status} before it was ready"),
                    log,
                });
            }
            if facegate_shared::probe::probe(&url).await.is_ok() {
                break;
            }
            if started.elapsed() > READY_WITHIN {
                let _ = child.kill().await;
                return Err(SoakError::Role {
                    role: role.name(),
                    problem: format!("not ready at {url} within {READY_WITHIN:?}"),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Ok(mut memory) = self.memory.lock() {
            let entry = memory.entry(role).or_default();
            entry.incarnations += 1;
            entry.pid = child.id();
        }
        tracing::info!(role = role.name(), pid = child.id(), %addr, ready_after = ?started.elapsed(), "role ready");
        self.running.insert(role, Running { child, addr });
        Ok(())
    }

    /// SIGKILLs `role` (no drain, no goodbye: a crashed container) and starts it again.
    pub async fn kill_and_restart(&mut self, role: Role) -> Result<(), SoakError> {
        self.forget(role);
        if let Some(mut running) = self.running.remove(&role) {
            // `kill` sends SIGKILL and reaps the child.
            running.child.kill().await.map_err(|source| SoakError::Io {
                what: format!("SIGKILL facegate {}", role.name()),
                source,
            })?;
            tracing::warn!(role = role.name(), "SIGKILLed; restarting");
        }
        self.start(role).await
    }

    /// Takes a last reading of `role`'s memory and stops sampling it (it is about to go).
    fn forget(&self, role: Role) {
        sample(&self.memory);
        if let Ok(mut memory) = self.memory.lock() {
            memory.entry(role).or_default().pid = None;
        }
    }

    pub fn memory(&self) -> BTreeMap<Role, RoleMemory> {
        self.memory.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// SIGTERMs `roles` together and waits for each, up to [`EXIT_WITHIN`]; one still running
    /// then is SIGKILLed.
    pub async fn terminate(&mut self, roles: &[Role]) -> Vec<ExitReport> {
        let mut children = Vec::new();
        for role in roles {
            self.forget(*role);
            if let Some(running) = self.running.remove(role) {
                if let Some(pid) = running.child.id() {
                    sigterm(pid);
                }
                children.push((*role, running.child));
            }
        }
        let sent = Instant::now();
        let waits = children.into_iter().map(|(role, mut child)| async move {
            let status = match tokio::time::timeout(EXIT_WITHIN, child.wait()).await {
                Ok(Ok(status)) => Some(status),
                Ok(Err(_)) | Err(_) => {
                    let _ = child.kill().await;
                    None
                }
            };
            ExitReport {
                role,
                status,
                after: sent.elapsed(),
            }
        });
        futures::future::join_all(waits).await
    }

    /// Runs `facegate provision` (the stack, and the collection on the engine) to the end; its
    /// report goes to `<run dir>/provision.log`.
    pub async fn provision(&self) -> Result<(), SoakError> {
        let log = self.settings.run_dir.join("provision.log");
        let (out, err) = log_files(&log)?;
        let mut command = self.base_command("provision")?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let status = tokio::time::timeout(READY_WITHIN, command.status())
            .await
            .map_err(|_| SoakError::Role {
                role: "provision",
                problem: format!("did not finish within {READY_WITHIN:?}"),
                log: log.clone(),
            })?
            .map_err(|source| SoakError::Io {
                what: "running facegate provision".into(),
                source,
            })?;
        if !status.success() {
            return Err(SoakError::Role {
                role: "provision",
                problem: format!("exited {status}"),
                log,
            });
        }
        Ok(())
    }

    /// `facegate <role>` with its environment.
    fn command(&self, role: Role, addr: SocketAddr) -> Result<Command, SoakError> {
        let s = &self.settings;
        let mut command = self.base_command(role.name())?;
        let addr = addr.to_string();
        match role {
            Role::Engine => {
                command
                    .env("FACEGATE_ENGINE_LISTEN", &addr)
                    .env("FACEGATE_ENGINE_DATA_DIR", s.run_dir.join("engine"))
                    .env("FACEGATE_MODELS_DIR", &s.models_dir)
                    .env("FACEGATE_ENGINE_WORKERS", s.engine_workers.to_string());
                if let Some(ort) = &s.ort_dylib_path {
                    command.env("ORT_DYLIB_PATH", ort);
                }
            }
            Role::Indexer | Role::Alerts => {
                command.env("FACEGATE_OPS_LISTEN", &addr);
            }
            Role::Dedup => {
                // Users are variants of a few people: with `flag`, a duplicate registration
                // still becomes ACTIVE (and raises its alert), so every registration takes
                // the whole path and every user can sign in.
                command
                    .env("FACEGATE_OPS_LISTEN", &addr)
                    .env("FACEGATE_DEDUP_POLICY", "flag");
            }
            Role::Verifier => {
                command
                    .env("FACEGATE_VERIFIER_LISTEN", &addr)
                    .env("FACEGATE_VERIFIER_TOKEN", &s.verifier_token);
            }
        }
        Ok(command)
    }

    /// `facegate <subcommand>` with what every child shares: the stack, the AWS endpoints, the
    /// engine (once it runs), the face-service budget.
    fn base_command(&self, subcommand: &str) -> Result<Command, SoakError> {
        let s = &self.settings;
        let executable = std::env::current_exe().map_err(|source| SoakError::Io {
            what: "finding this executable".into(),
            source,
        })?;
        let mut command = Command::new(executable);
        command
            .arg(subcommand)
            .env("FACEGATE_PREFIX", s.prefix.as_str())
            .env("FACEGATE_LOG_FORMAT", "json")
            .env(
                "FACEGATE_ENV",
                s.aws
                    .deployment
                    .to_possible_value()
                    .map_or("local".to_string(), |v| v.get_name().to_string()),
            )
            .env("AWS_REGION", &s.aws.region)
            .env(
                "FACEGATE_FACE_CALLS_PER_SECOND",
                s.face_calls_per_second.to_string(),
            )
            .env(
                "FACEGATE_FACE_CALLS_BURST",
                s.face_calls_per_second.to_string(),
            )
            // The stack was provisioned with the defaults under this prefix: names and the
            // redrive policy must match it, whatever the caller's environment says.
            .env_remove("FACEGATE_BUCKET")
            .env_remove("FACEGATE_MAX_RECEIVE_COUNT")
            // Every service's endpoint is set below: the soak's own emulator, not the caller's.
            .env_remove("AWS_ENDPOINT_URL")
            // The soak's sign-ins present one selfie each: it loads the single-selfie flow.
            .env("FACEGATE_LIVENESS_POLICY", "off")
            .kill_on_drop(true);
        for (service, variable) in [
            (Service::S3, "AWS_ENDPOINT_URL_S3"),
            (Service::Sqs, "AWS_ENDPOINT_URL_SQS"),
            (Service::Sns, "AWS_ENDPOINT_URL_SNS"),
            (Service::DynamoDb, "AWS_ENDPOINT_URL_DYNAMODB"),
            (Service::CloudWatch, "AWS_ENDPOINT_URL_CLOUDWATCH"),
            (
                Service::Cognito,
                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
            ),
            (Service::Lambda, "AWS_ENDPOINT_URL_LAMBDA"),
        ] {
            if let Some(endpoint) = s.aws.endpoint(service) {
                command.env(variable, endpoint);
            }
        }
        // Everything after the engine talks to it as Rekognition.
        if let Some(engine) = self.engine_url() {
            command.env("AWS_ENDPOINT_URL_REKOGNITION", engine);
        }
        Ok(command)
    }
}

/// The log file of a child, opened twice (stdout and stderr).
pub fn log_files(log: &Path) -> Result<(std::fs::File, std::fs::File), SoakError> {
    let io = |source| SoakError::Io {
        what: format!("opening {}", log.display()),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let again = file.try_clone().map_err(io)?;
    Ok((file, again))
}

/// Reads the `/proc/<pid>/status` of every running child into the book.
fn sample(memory: &MemoryBook) {
    let Ok(mut memory) = memory.lock() else {
        return;
    };
    for entry in memory.values_mut() {
        let Some(now) = entry.pid.and_then(Memory::of_pid) else {
            continue;
        };
        entry.peak_kib = entry.peak_kib.max(now.peak_kib);
        entry.last_rss_kib = now.rss_kib;
    }
}

/// A loopback port nobody listens on now (it is released before the child binds it; a clash
/// shows up as a role that does not become ready).
pub fn free_port() -> Result<SocketAddr, SoakError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|source| SoakError::Io {
            what: "finding a free loopback port".into(),
            source,
        })
}

/// SIGTERM, as ECS and Kubernetes stop a container.
fn sigterm(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) only sends a signal; `pid` is our own child, not yet reaped (its
    // `Child` is still held), so the id cannot have been reused.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    if sent != 0 {
        tracing::warn!(pid, error = %std::io::Error::last_os_error(), "SIGTERM failed");
    }
}

/// Makes `dir`, reporting which one could not be made.
pub fn create_dir(dir: &Path) -> Result<(), SoakError> {
    std::fs::create_dir_all(dir).map_err(|source| SoakError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })
}
