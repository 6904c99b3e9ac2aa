//! The soak's chaos schedule: which process dies when, drawn from a seed, printed before the
//! run, and the same for the same seed and settings.
//!
//! A fault is timed on the progress of the flow it should hurt, not on the clock (a run's
//! length depends on the machine): the registration workers (indexer, dedup) on the share of
//! registrations final, the sign-in roles (verifier, the trigger Lambda, alerts) on the share
//! of sign-ins done, the engine alternately on both (it serves both), and the emulator's one
//! restart half-way through the registrations, while sign-ins run too. Each role's kills are
//! spread out: the flow's window is cut into as many slots as the role has kills, and each
//! kill falls at a random point of its own slot.

use std::fmt;
use std::time::{Duration, Instant};

use super::fleet::Role;
use super::lambda::LambdaKill;

/// What the schedule does to the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a role of the fleet and start it again on the same address.
    Kill(Role),
    /// SIGKILL every process the emulator runs for the trigger Lambda; the emulator starts a
    /// new one on the next invocation.
    KillLambda,
    /// Stop the emulator (it writes its state out), start it again on the same port and
    /// state.
    RestartEmulator,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(role) => write!(f, "SIGKILL the {}", role.name()),
            Fault::KillLambda => write!(f, "SIGKILL the trigger Lambda"),
            Fault::RestartEmulator => write!(f, "restart the emulator (state kept)"),
        }
    }
}

/// The flow whose progress times a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Clock {
    /// Share of the registrations that are final.
    Registrations,
    /// Share of the sign-in attempts that ended.
    SignIns,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Registrations => "registrations final",
            Clock::SignIns => "sign-ins done",
        })
    }
}

/// One planned fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub clock: Clock,
    /// Share (0-1) of the clock's flow.
    pub at: f64,
    pub fault: Fault,
}

/// Every fault of a run, in the order each is due on its own clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub seed: u64,
    pub events: Vec<Event>,
}

/// Where on its flow a fault may fall: late enough that the flow is under way, early enough
/// that work still follows it (what the fault interrupted must be seen to recover).
const WINDOW: (f64, f64) = (0.08, 0.85);
/// Where the emulator's restart falls on the registrations.
const EMULATOR_WINDOW: (f64, f64) = (0.35, 0.6);

impl Schedule {
    /// `kills_per_role` SIGKILLs of every role and of the Lambda, and `emulator_restarts`
    /// restarts of the emulator (0 or more), drawn from `seed`.
    pub fn new(seed: u64, kills_per_role: u32, emulator_restarts: u32) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut events = Vec::new();
        let mut spread = |rng: &mut fastrand::Rng, fault, clocks: &[Clock], window: (f64, f64)| {
            let n = kills_per_role.max(1);
            let slot = (window.1 - window.0) / f64::from(n);
            for k in 0..n {
                let start = window.0 + slot * f64::from(k);
                events.push(Event {
                    clock: clocks[k as usize % clocks.len()],
                    at: start + rng.f64() * slot,
                    fault,
                });
            }
        };
        if kills_per_role > 0 {
            use Clock::{Registrations, SignIns};
            for (fault, clocks) in [
                (Fault::Kill(Role::Indexer), &[Registrations][..]),
                (Fault::Kill(Role::Dedup), &[Registrations][..]),
                (Fault::Kill(Role::Engine), &[Registrations, SignIns][..]),
                (Fault::Kill(Role::Verifier), &[SignIns][..]),
                (Fault::KillLambda, &[SignIns][..]),
                (Fault::Kill(Role::Alerts), &[SignIns][..]),
            ] {
                spread(&mut rng, fault, clocks, WINDOW);
            }
        }
        let slot = (EMULATOR_WINDOW.1 - EMULATOR_WINDOW.0) / f64::from(emulator_restarts.max(1));
        for k in 0..emulator_restarts {
            events.push(Event {
                clock: Clock::Registrations,
                at: EMULATOR_WINDOW.0 + slot * (f64::from(k) + rng.f64()),
                fault: Fault::RestartEmulator,
            });
        }
        events.sort_by(|a, b| a.at.total_cmp(&b.at).then(a.clock.cmp(&b.clock)));
        Schedule { seed, events }
    }

    /// How many times `fault` is planned.
    #[cfg(test)]
    fn count(&self, fault: Fault) -> usize {
        self.events.iter().filter(|e| e.fault == fault).count()
    }
}

/// A fault as it happened.
#[derive(Clone, Debug)]
pub struct Happened {
    pub event: Event,
    /// The share of its clock's flow when it was carried out (at or past `event.at`).
    pub progress: f64,
    /// When it was carried out, and how long after the start of the load.
    pub at: Instant,
    pub after: Duration,
    /// Until the role (or the emulator) answered again.
    pub took: Duration,
    /// What a SIGKILL of the trigger Lambda found and saw replaced.
    pub lambda: Option<LambdaKill>,
}

impl fmt::Display for Happened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {:>5.1}% of the {:<19} {} ({:.0} s into the load); ",
            self.progress * 100.0,
            self.event.clock.to_string() + ":",
            self.event.fault,
            self.after.as_secs_f64()
        )?;
        match (&self.lambda, self.event.fault) {
            (Some(kill), _) => write!(f, "{kill}"),
            (None, Fault::RestartEmulator) => {
                write!(f, "answering again after {:.1} s", self.took.as_secs_f64())
            }
            (None, _) => write!(f, "restarted, ready after {:.1} s", self.took.as_secs_f64()),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos schedule (seed {}; `--seed {}` repeats it):",
            self.seed, self.seed
        )?;
        if self.events.is_empty() {
            writeln!(f, "  nothing")?;
        }
        for event in &self.events {
            writeln!(
                f,
                "  at {:>5.1}% of the {:<19} {}",
                event.at * 100.0,
                event.clock.to_string() + ":",
                event.fault
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = Schedule::new(42, 2, 1);
        assert_eq!(a, Schedule::new(42, 2, 1));
        assert_eq!(a.to_string(), Schedule::new(42, 2, 1).to_string());
        assert_ne!(a.events, Schedule::new(43, 2, 1).events);
    }

    #[test]
    fn every_role_is_killed_as_often_as_asked_inside_the_window() {
        let schedule = Schedule::new(7, 2, 1);
        for role in [
            Role::Engine,
            Role::Indexer,
            Role::Dedup,
            Role::Alerts,
            Role::Verifier,
        ] {
            assert_eq!(schedule.count(Fault::Kill(role)), 2, "{role:?}");
        }
        assert_eq!(schedule.count(Fault::KillLambda), 2);
        assert_eq!(schedule.count(Fault::RestartEmulator), 1);
        assert_eq!(schedule.events.len(), 13);
        assert!(
            schedule
                .events
                .iter()
                .all(|e| (WINDOW.0..=WINDOW.1).contains(&e.at))
        );
        // The engine dies once on each flow; a role's two kills are in different halves.
        let engine: Vec<&Event> = schedule
            .events
            .iter()
            .filter(|e| e.fault == Fault::Kill(Role::Engine))
            .collect();
        assert_ne!(engine[0].clock, engine[1].clock);
        let indexer: Vec<f64> = schedule
            .events
            .iter()
            .filter(|e| e.fault == Fault::Kill(Role::Indexer))
            .map(|e| e.at)
            .collect();
        let middle = (WINDOW.0 + WINDOW.1) / 2.0;
        assert!(indexer[0] <= middle && indexer[1] >= middle, "{indexer:?}");
    }

    #[test]
    fn no_kills_and_no_restart_is_an_empty_schedule() {
        let schedule = Schedule::new(1, 0, 0);
        assert!(schedule.events.is_empty());
        assert!(schedule.to_string().contains("nothing"));
    }
}
