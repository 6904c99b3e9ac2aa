//! The soak's own AWS emulator: ministack, started through `scripts/stack.sh` on a free
//! loopback port with persistence on (`FACEGATE_STACK_PERSIST=1`) and its state, S3 objects,
//! pid file and log in the run folder (`FACEGATE_STACK_DIR`).
//!
//! The soak owns it so that the chaos can restart it: `stack.sh stop` sends SIGTERM, on which
//! ministack writes every service's state out; `stack.sh start` on the same port and folder
//! loads it again. Nobody else's stack shares it, so stopping it disturbs no one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::SoakError;
use super::fleet::free_port;

/// The emulator the soak started, and how to start it again.
pub struct Emulator {
    script: PathBuf,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    running: bool,
}

impl Emulator {
    /// Starts ministack with `script` (`scripts/stack.sh`) on a free port, its files under
    /// `<run_dir>/emulator`, and waits until it answers.
    pub async fn start(script: &Path, run_dir: &Path) -> Result<Self, SoakError> {
        let dir = run_dir.join("emulator");
        super::fleet::create_dir(&dir)?;
        let mut emulator = Emulator {
            script: script.to_owned(),
            port: free_port()?.port(),
            log: run_dir.join("emulator.log"),
            dir,
            running: false,
        };
        emulator.run("start").await?;
        emulator.running = true;
        Ok(emulator)
    }

    /// Where every AWS service of the soak's stack answers.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (state written out) and starts it again on the same port and state. Returns
    /// how long it did not answer.
    pub async fn restart(&mut self) -> Result<Duration, SoakError> {
        let started = Instant::now();
        self.running = false;
        self.run("stop").await?;
        self.run("start").await?;
        self.running = true;
        Ok(started.elapsed())
    }

    /// Stops it for good.
    pub async fn stop(&mut self) -> Result<(), SoakError> {
        if self.running {
            self.running = false;
            self.run("stop").await?;
        }
        Ok(())
    }

    /// `stack.sh <action>` for this emulator, its output appended to the emulator's log.
    fn command(&self, action: &str) -> Result<Command, SoakError> {
        let (out, err) = super::fleet::log_files(&self.log)?;
        let mut command = Command::new(&self.script);
        command
            .arg(action)
            .env("FACEGATE_STACK_PORT", self.port.to_string())
            .env("FACEGATE_STACK_PERSIST", "1")
            .env("FACEGATE_STACK_DIR", &self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Ok(command)
    }

    async fn run(&self, action: &str) -> Result<(), SoakError> {
        let status = self
            .command(action)?
            .status()
            .await
            .map_err(|source| SoakError::Io {
                what: format!("running {} {action}", self.script.display()),
                source,
            })?;
        if !status.success() {
            return Err(SoakError::Role {
                role: "emulator",
                problem: format!("`stack.sh {action}` exited {status}"),
                log: self.log.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for Emulator {
    /// Every way out of the soak stops its emulator (the children of `stack.sh` outlive it
    /// otherwise: it starts ministack in a session of its own).
    fn drop(&mut self) {
        if self.running
            && let Ok(command) = self.command("stop")
        {
            let mut command = command.into_std();
            let _ = command.status();
        }
    }
}
