//! The trigger Lambda as the chaos sees it: the host processes the emulator runs for the
//! stack's trigger function (`facegate verifier --lambda`, one per execution environment in
//! use), found by the environment Lambda's runtime gives every one of them
//! (`AWS_LAMBDA_FUNCTION_NAME=<prefix>-verifier-trigger`).
//!
//! They are not the soak's children: the emulator starts them on an invocation, and after a
//! SIGKILL it must start a new one on the next invocation. [`TriggerLambda::kill`] checks
//! that it does: normally a sign-in through the pool invokes the function within moments; when
//! none comes (the flows near their end), the soak invokes it itself, with the Define event
//! Cognito sends for a user who does not exist.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use serde_json::json;

use super::SoakError;
use crate::client::{Trigger, cognito_event};

/// How long the soak waits for a sign-in to invoke the function before invoking it itself.
const NATURAL_WITHIN: Duration = Duration::from_secs(10);
/// How long the emulator may take to run the function again once it is invoked.
const REPLACED_WITHIN: Duration = Duration::from_secs(60);

/// What one SIGKILL of the trigger Lambda did.
#[derive(Clone, Debug)]
pub struct LambdaKill {
    pub killed: Vec<u32>,
    /// The first process of the function seen after the kill, and when; `None` if none was.
    pub replaced_by: Option<(u32, Duration)>,
    /// The soak invoked the function itself (no sign-in did within [`NATURAL_WITHIN`]).
    pub probed: bool,
}

impl std::fmt::Display for LambdaKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pids {:?}; ", self.killed)?;
        match self.replaced_by {
            Some((pid, after)) => write!(
                f,
                "the emulator ran the function again as pid {pid} {:.1} s later{}",
                after.as_secs_f64(),
                if self.probed {
                    " (invoked by the soak: no sign-in came through the pool meanwhile)"
                } else {
                    ""
                }
            ),
            None => write!(f, "no new process of the function, although it was invoked"),
        }
    }
}

/// The processes of one Lambda function.
pub struct TriggerLambda {
    lambda: aws_sdk_lambda::Client,
    function: String,
    /// `AWS_LAMBDA_FUNCTION_NAME=<function>`, as it appears in `/proc/<pid>/environ`.
    marker: Vec<u8>,
}

impl TriggerLambda {
    pub fn new(lambda: aws_sdk_lambda::Client, function: &str) -> Self {
        Self {
            lambda,
            function: function.to_string(),
            marker: format!("AWS_LAMBDA_FUNCTION_NAME={function}").into_bytes(),
        }
    }

    /// Invokes the function once, as the pool would for a user who does not exist (Define
    /// fails them without reading anything). Its answer does not matter, only that it runs.
    async fn invoke(&self) {
        let event = cognito_event(
            "soak-lambda-probe",
            Trigger::Define,
            json!({ "userAttributes": {}, "session": [], "userNotFound": true }),
        );
        let invoked = self
            .lambda
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(event.to_string()))
            .send()
            .await;
        if let Err(e) = invoked {
            tracing::warn!(error = %facegate_shared::report::chain(&e), "invoking the trigger Lambda failed");
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

    /// SIGKILLs every process of the function, then waits for the emulator to run a new one.
    /// When none runs (nothing signed in through the pool yet), the function is invoked first,
    /// and `within` is how long one may take to appear.
    pub async fn kill(&self, within: Duration) -> Result<LambdaKill, SoakError> {
        let started = Instant::now();
        let mut invoked = false;
        let victims = loop {
            let found = self.processes();
            if !found.is_empty() {
                break found;
            }
            if !invoked && started.elapsed() > Duration::from_secs(2) {
                invoked = true;
                self.invoke().await;
                continue;
            }
            if started.elapsed() > within {
                return Err(SoakError::Run(format!(
                    "no process of the trigger Lambda to kill within {within:?}, although it \
                     was invoked"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for pid in &victims {
            sigkill(*pid);
        }
        let killed_at = Instant::now();
        tracing::warn!(pids = ?victims, "SIGKILLed the trigger Lambda");
        let replaced = |victims: &BTreeSet<u32>| {
            self.processes()
                .difference(victims)
                .next()
                .map(|pid| (*pid, killed_at.elapsed()))
        };
        let mut probed = false;
        let replaced_by = loop {
            if let Some(found) = replaced(&victims) {
                break Some(found);
            }
            let waited = killed_at.elapsed();
            if !probed && waited > NATURAL_WITHIN {
                probed = true;
                self.invoke().await;
                continue;
            }
            if waited > NATURAL_WITHIN + REPLACED_WITHIN {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(LambdaKill {
            killed: victims.into_iter().collect(),
            replaced_by,
            probed,
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
        // A client only: nothing is invoked.
        let client = facegate_shared::aws::AwsSettings::local()
            .clients()
            .await
            .lambda;
        let lambda = TriggerLambda::new(client.clone(), &function);
        assert_eq!(lambda.processes(), BTreeSet::from([pid]));
        assert!(
            TriggerLambda::new(client, "another-function")
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
