//! What `facegate bench soak` prints: the load, throughput and latency per flow (p50, p99),
//! how the sign-ins ended and how often clients had to try again, the chaos schedule and what
//! happened of it, peak memory per role, how each role stopped, and the audit.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use facegate_shared::measure::percentile;

use super::audit::Line;
use super::chaos::{Happened, Schedule};
use super::fleet::{ExitReport, Role, RoleMemory};
use super::registrations::Upload;
use super::signins::{Attempt, Channel, Kind, Outcome};

/// Sorted latencies and the rate of one flow.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    pub count: usize,
    pub per_second: f64,
    pub sorted: Vec<Duration>,
}

impl Flow {
    pub fn new(mut samples: Vec<Duration>, count: usize, wall: Duration) -> Self {
        samples.sort();
        Self {
            count,
            per_second: count as f64 / wall.as_secs_f64().max(1e-3),
            sorted: samples,
        }
    }

    fn ms(&self, p: f64) -> f64 {
        percentile(&self.sorted, p).as_secs_f64() * 1000.0
    }
}

/// Every figure of one soak.
#[derive(Debug)]
pub struct Report {
    pub prefix: String,
    pub clients: usize,
    pub impostor_percent: u8,
    pub impostor_targets: usize,
    /// The chaos planned, and what happened of it.
    pub schedule: Schedule,
    pub happened: Vec<Happened>,
    /// Upload to final: the rate over every registration; latency upload -> ACTIVE.
    pub registrations: Flow,
    pub uploads: Vec<Upload>,
    /// The whole sequence per attempt, both doors, and each door on its own.
    pub sign_ins: Flow,
    pub pool_sign_ins: Flow,
    pub http_sign_ins: Flow,
    /// The Verify call alone.
    pub verifies: Flow,
    pub attempts: Vec<Attempt>,
    /// Why Verify refused the genuine attempts it refused, as published (reason -> count).
    pub genuine_refusals: BTreeMap<String, usize>,
    pub memory: BTreeMap<Role, RoleMemory>,
    pub exits: Vec<ExitReport>,
    pub audit: Vec<Line>,
    /// The run folder (logs), kept when something failed.
    pub kept: Option<PathBuf>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.audit.iter().all(|l| l.passed)
    }

    fn outcomes(&self, kind: Kind, channel: Channel) -> String {
        let of = |wanted: fn(&Outcome) -> bool| {
            self.attempts
                .iter()
                .filter(|a| a.kind == kind && a.channel == channel && wanted(&a.outcome))
                .count()
        };
        format!(
            "{} signed in, {} rejected, {} locked out, {} errors",
            of(|o| *o == Outcome::SignedIn),
            of(|o| *o == Outcome::Rejected),
            of(|o| *o == Outcome::LockedOut),
            of(|o| matches!(o, Outcome::Error(_)))
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let again = self.uploads.iter().filter(|u| u.again).count();
        writeln!(
            f,
            "facegate bench soak: stack {}, {} registrations ({} of them re-registrations), {} \
             sign-ins ({}% impostors, aimed at {} user(s)), {} clients per flow, both flows at \
             once",
            self.prefix,
            self.registrations.count,
            again,
            self.sign_ins.count,
            self.impostor_percent,
            self.impostor_targets,
            self.clients,
        )?;
        writeln!(f)?;
        write!(f, "{}", self.schedule)?;
        writeln!(f, "what happened:")?;
        for happened in &self.happened {
            writeln!(f, "  {happened}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "flow                                     count      per s   p50 ms   p99 ms"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, flow: &Flow, rate: bool| {
            let per_second = if rate {
                format!("{:>9.2}", flow.per_second)
            } else {
                format!("{:>9}", "-")
            };
            writeln!(
                f,
                "{name:<38} {:>7}  {per_second}  {:>7.0}  {:>7.0}",
                flow.count,
                flow.ms(0.50),
                flow.ms(0.99)
            )
        };
        row(
            f,
            "registrations (upload->ACTIVE)",
            &self.registrations,
            true,
        )?;
        row(f, "sign-ins, both doors", &self.sign_ins, true)?;
        row(
            f,
            "  pool: InitiateAuth..tokens",
            &self.pool_sign_ins,
            false,
        )?;
        row(f, "  HTTP: Define..Define", &self.http_sign_ins, false)?;
        row(f, "    Verify call alone", &self.verifies, false)?;
        writeln!(
            f,
            "(registrations/s: every upload to the last final state; latency: end of PutObject \
             to the ACTIVE record's updated_at, the uploads all made at the start, so it includes \
             the backlog; a sign-in's latency is its last start to its end)"
        )?;
        writeln!(f)?;
        for (channel, door) in [
            (Channel::Pool, "through the user pool"),
            (Channel::Http, "over HTTP"),
        ] {
            for (kind, who) in [(Kind::Genuine, "genuine"), (Kind::Impostor, "impostor")] {
                writeln!(
                    f,
                    "{who:<8} sign-ins {door:<21}: {}",
                    self.outcomes(kind, channel)
                )?;
            }
        }
        writeln!(
            f,
            "genuine attempts Verify refused, by the reason it published: {:?}",
            self.genuine_refusals
        )?;
        let restarted: Vec<&Attempt> = self.attempts.iter().filter(|a| a.restarts > 0).collect();
        writeln!(
            f,
            "sign-ins started again after their server died: {} ({} restarts); registration \
             calls made again after they failed: {}",
            restarted.len(),
            restarted.iter().map(|a| a.restarts).sum::<u32>(),
            self.uploads.iter().map(|u| u.retries).sum::<u32>()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "role       peak RSS MiB  last RSS MiB  incarnations  SIGTERM"
        )?;
        for (role, memory) in &self.memory {
            let exit = self
                .exits
                .iter()
                .find(|e| e.role == *role)
                .map_or("-".to_string(), |e| match e.status {
                    Some(status) => format!("{status} after {:.1} s", e.after.as_secs_f64()),
                    None => format!("still running after {:.0} s", e.after.as_secs_f64()),
                });
            writeln!(
                f,
                "{:<9} {:>13.1} {:>13.1} {:>13}  {exit}",
                role.name(),
                memory.peak_kib as f64 / 1024.0,
                memory.last_rss_kib as f64 / 1024.0,
                memory.incarnations
            )?;
        }
        writeln!(f)?;
        writeln!(f, "FINAL AUDIT")?;
        for line in &self.audit {
            writeln!(f, "{line}")?;
        }
        if let Some(dir) = &self.kept {
            writeln!(f, "logs of every role kept in {}", dir.display())?;
        }
        Ok(())
    }
}
