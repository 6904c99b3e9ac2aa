//! The trigger Lambda as the chaos sees it: the host processes the emulator runs for the
//! stack's trigger function (`facegate verifier --lambda`, one per execution environment in
//! use), found by the environment Lambda's runtime gives every one of them
//! (`AWS_LAMBDA_FUNCTION_NAME=<prefix>-verifier-trigger`).
//!
//! They are not the soak's children: the emulator starts them on an invocation, and after a
//! SIGKILL it must start a new one on the next invocation. [`TriggerLambda::kill`] checks
//! that it does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::SoakError;

/// How long the emulator may take to run the function again after its processes died: the
/// next sign-in through the pool invokes it within a few seconds.
const REPLACED_WITHIN: Duration = Duration::from_secs(90);

/// What one SIGKILL of the trigger Lambda did.
#[derive(Clone, Debug)]
pub struct LambdaKill {
    pub killed: Vec<u32>,
    /// The first process of the function seen after the kill, and when; `None` if none was
    /// within [`REPLACED_WITHIN`].
    pub replaced_by: Option<(u32, Duration)>,
}

impl std::fmt::Display for LambdaKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pids {:?}; ", self.killed)?;
        match self.replaced_by {
            Some((pid, after)) => write!(
                f,
                "the emulator ran the function again as pid {pid} {:.1} s later",
                after.as_secs_f64()
            ),
            None => write!(
                f,
                "no new process of the function within {} s",
                REPLACED_WITHIN.as_secs()
            ),
        }
    }
}

/// The processes of one Lambda function.
pub struct TriggerLambda {
    /// `AWS_LAMBDA_FUNCTION_NAME=<function>`, as it appears in `/proc/<pid>/environ`.
    marker: Vec<u8>,
}

impl TriggerLambda {
    pub fn new(function: &str) -> Self {
        Self {
            marker: format!("AWS_LAMBDA_FUNCTION_NAME={function}").into_bytes(),
        }
    }

    /// Every live process of the function.
    pub fn processes(&self) -> BTreeSet<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return BTreeSet::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // A process that is gone, or not ours to read, is not one of them.
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                    environ
                        .split(|&b| b == 0)
                        .any(|entry| entry == self.marker.as_slice())
                })
            })
            .collect()
    }

    /// SIGKILLs every process of the function (waiting up to `within` for one to exist: the
    /// emulator starts the first on the first invocation), then waits for the emulator to run
    /// a new one.
    pub async fn kill(&self, within: Duration) -> Result<LambdaKill, SoakError> {
        let started = Instant::now();
        let victims = loop {
            let found = self.processes();
            if !found.is_empty() {
                break found;
            }
            if started.elapsed() > within {
                return Err(SoakError::Run(format!(
                    "no process of the trigger Lambda to kill within {within:?}: is nothing \
                     signing in through the user pool?"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for pid in &victims {
            sigkill(*pid);
        }
        let killed_at = Instant::now();
        tracing::warn!(pids = ?victims, "SIGKILLed the trigger Lambda");
        let replaced_by = loop {
            if let Some(pid) = self.processes().difference(&victims).next() {
                break Some((*pid, killed_at.elapsed()));
            }
            if killed_at.elapsed() > REPLACED_WITHIN {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(LambdaKill {
            killed: victims.into_iter().collect(),
            replaced_by,
        })
    }
}

/// SIGKILL: a Lambda execution environment that crashes or is reclaimed says no goodbye.
fn sigkill(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) only sends a signal. The pid was read from /proc a moment ago as a
    // process of this function; should it have exited meanwhile, the call fails (ESRCH) or, in
    // the unlikely case the id was reused that fast, hits a process of the same user.
    let sent = unsafe { libc::kill(pid, libc::SIGKILL) };
    if sent != 0 {
        tracing::info!(pid, error = %std::io::Error::last_os_error(), "SIGKILL of a Lambda process failed (already gone?)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_and_kills_a_process_by_its_function_name() {
        let function = format!("fg-lambda-test-{}", std::process::id());
        let mut child = tokio::process::Command::new("sleep")
            .arg("60")
            .env("AWS_LAMBDA_FUNCTION_NAME", &function)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let lambda = TriggerLambda::new(&function);
        assert_eq!(lambda.processes(), BTreeSet::from([pid]));
        assert!(
            TriggerLambda::new("another-function")
                .processes()
                .is_empty()
        );
        sigkill(pid);
        let status = child.wait().await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(lambda.processes().is_empty());
    }
}
