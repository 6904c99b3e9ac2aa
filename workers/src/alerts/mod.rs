//! The failure-alert worker (`facegate alerts`): turns failed sign-ins into counts, locks and
//! security alerts.
//!
//! For each failed `AuthEvent` from the `alerts` queue (an SNS envelope; the subscription's
//! filter policy lets failures only through) that the person caused (a refusal because the
//! face service or a store failed is the stack's fault, and counts against nobody: an outage
//! must not lock out the users who keep trying through it):
//! 1. count it once against `user#<id>` and `source#<address>` ([`windows`]: bucketed
//!    counters, idempotent on the event's own id: a redelivered message and an event
//!    published twice, as two SNS messages, after its Publish answer was lost, count once);
//! 2. sum the user's window: at `lockout_threshold` failures lock the user for `lockout_secs`
//!    ([`lockout`]) and raise a `lockout` alert;
//! 3. sum the source's window: at `source_alert_threshold` raise a `repeated-failure` alert;
//! 4. a failed liveness check is also counted against `liveness-device#<id>` and
//!    `liveness-source#<address>`; at `liveness_failure_threshold` within
//!    `liveness_window_secs` (AWS's advice: 5 in 3 minutes) the device or source is timed out
//!    for `liveness_timeout_secs` (30 minutes, [`timeout`]) and a `liveness-timeout` alert
//!    raised. Verify refuses a timed-out origin before any face work;
//! 5. put `FailedLogins` / `Lockouts` into CloudWatch ([`alerter`]).
//!
//! Steps 2 to 4 run on every delivery, so a crash after counting still locks and alerts on
//! the redelivery; alerts carry ids derived from their cause and are raised once per id.
//! Beside the handler, [`dead_letters`] watches every dead-letter queue.
//!
//! It runs on the shared worker runtime (receive loop, heartbeat, retries, drain).

pub mod alerter;
pub mod dead_letters;
pub mod lockout;
pub mod timeout;
pub mod windows;

use std::time::Duration;

use facegate_shared::config::Queue;
use facegate_shared::events::{
    AlertKind, AlertSubject, AuthEvent, AuthOutcome, Notification, Origin, SecurityAlert, Severity,
};
use facegate_shared::ops::Health;
use facegate_shared::stack::Stack;
use facegate_shared::worker::{Handler, HandlerError, Message, WorkerSettings};
use tokio_util::sync::CancellationToken;

use crate::role::{self, RoleArgs, RoleError};
use alerter::Metric;
use lockout::Lock;
use timeout::Timeout;
use windows::{Subject, Windows};

/// The failure-alert worker's own settings.
#[derive(clap::Args, Clone, Debug)]
pub struct AlertsSettings {
    /// Length of the sliding window failures are counted in, in seconds.
    #[arg(
        long = "failure-window-secs",
        env = "FACEGATE_FAILURE_WINDOW_SECS",
        default_value_t = 900
    )]
    pub window_secs: u64,
    /// Size of one counter bucket, in seconds: the window slides in these steps.
    #[arg(
        long = "failure-bucket-secs",
        env = "FACEGATE_FAILURE_BUCKET_SECS",
        default_value_t = 60
    )]
    pub bucket_secs: u64,
    /// Failed sign-ins of one user within the window that lock the user.
    #[arg(
        long = "lockout-threshold",
        env = "FACEGATE_LOCKOUT_THRESHOLD",
        default_value_t = 3
    )]
    pub lockout_threshold: u32,
    /// How long a lock lasts, in seconds.
    #[arg(
        long = "lockout-secs",
        env = "FACEGATE_LOCKOUT_SECS",
        default_value_t = 900
    )]
    pub lockout_secs: u64,
    /// Failed sign-ins from one source address within the window that raise a
    /// repeated-failure alert.
    #[arg(
        long = "source-alert-threshold",
        env = "FACEGATE_SOURCE_ALERT_THRESHOLD",
        default_value_t = 10
    )]
    pub source_alert_threshold: u32,
    /// Failed liveness checks from one device or one source address within the liveness
    /// window that time it out.
    #[arg(
        long = "liveness-failure-threshold",
        env = "FACEGATE_LIVENESS_FAILURE_THRESHOLD",
        default_value_t = 5
    )]
    pub liveness_failure_threshold: u32,
    /// Length of the window failed liveness checks are counted in, in seconds.
    #[arg(
        long = "liveness-window-secs",
        env = "FACEGATE_LIVENESS_WINDOW_SECS",
        default_value_t = 180
    )]
    pub liveness_window_secs: u64,
    /// How long a device or source stays timed out, in seconds.
    #[arg(
        long = "liveness-timeout-secs",
        env = "FACEGATE_LIVENESS_TIMEOUT_SECS",
        default_value_t = 1800
    )]
    pub liveness_timeout_secs: u64,
    /// How often every dead-letter queue is checked, in seconds.
    #[arg(
        long = "dlq-check-secs",
        env = "FACEGATE_DLQ_CHECK_SECS",
        default_value_t = 60
    )]
    pub dlq_check_secs: u64,
}

impl Default for AlertsSettings {
    fn default() -> Self {
        Self {
            window_secs: 900,
            bucket_secs: 60,
            lockout_threshold: 3,
            lockout_secs: 900,
            source_alert_threshold: 10,
            liveness_failure_threshold: 5,
            liveness_window_secs: 180,
            liveness_timeout_secs: 1800,
            dlq_check_secs: 60,
        }
    }
}

/// `facegate alerts`.
#[derive(clap::Args, Clone, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub alerts: AlertsSettings,
}

/// Why handling a failure went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{call} failed")]
    DynamoDb {
        call: &'static str,
        #[source]
        source: facegate_shared::worker::BoxError,
    },
    #[error("could not build a DynamoDB request")]
    Build(#[from] aws_sdk_dynamodb::error::BuildError),
    #[error(transparent)]
    Publish(#[from] facegate_shared::events::sns::PublishError),
}

impl AlertError {
    pub fn dynamodb(
        call: &'static str,
        source: impl Into<facegate_shared::worker::BoxError>,
    ) -> Self {
        Self::DynamoDb {
            call,
            source: source.into(),
        }
    }
}

/// The handler of the `alerts` queue.
pub struct FailureAlerts {
    stack: Stack,
    settings: AlertsSettings,
    windows: Windows,
    liveness_windows: Windows,
}

impl FailureAlerts {
    pub fn new(stack: Stack, settings: AlertsSettings) -> Self {
        let windows = Windows::new(&settings);
        let liveness_windows = Windows::liveness(&settings);
        Self {
            stack,
            settings,
            windows,
            liveness_windows,
        }
    }

    async fn on_failure(&self, event: &AuthEvent) -> Result<(), AlertError> {
        if let AuthOutcome::Failure { reason } = event.outcome
            && reason.is_the_stacks_fault()
        {
            tracing::info!(user = %event.user_id, ?reason, "a refusal the stack caused: counted against nobody");
            return Ok(());
        }
        let user = Subject::User(event.user_id.clone());
        let source = event.source.map(Subject::Source);
        let failed_check = matches!(event.outcome,
            AuthOutcome::Failure { reason } if reason.is_failed_liveness_check());
        let checked_origins = if failed_check {
            event.origins()
        } else {
            Vec::new()
        };
        let subjects: Vec<Subject> = std::iter::once(user.clone())
            .chain(source.clone())
            .chain(checked_origins.iter().cloned().map(Subject::LivenessChecks))
            .collect();
        // The event's id, not the SNS message's: the verifier may publish one answer twice.
        let key = format!("alerts#{}", event.event_id);
        if windows::count_once(&self.stack, &self.windows, &key, &subjects, event.time).await? {
            alerter::put_metric(&self.stack, Metric::FailedLogins, 1.0, None).await;
        }

        let failures =
            windows::failures_in_window(&self.stack, &self.windows, &user, event.time).await?;
        if failures >= i64::from(self.settings.lockout_threshold) {
            self.lock(event, failures).await?;
        }
        if let (Some(source), Some(ip)) = (&source, event.source) {
            let failures =
                windows::failures_in_window(&self.stack, &self.windows, source, event.time).await?;
            if failures >= i64::from(self.settings.source_alert_threshold) {
                let window = event.time.timestamp().div_euclid(self.windows.window_secs);
                let alert = self.alert(
                    format!("repeated-failure:source#{ip}:{window}"),
                    AlertKind::RepeatedFailure,
                    Severity::Medium,
                    AlertSubject::Source(ip),
                    format!(
                        "{failures} failed sign-ins from {ip} within {} s",
                        self.windows.window_secs
                    ),
                    event,
                    failures,
                );
                alerter::raise_once(&self.stack, &alert).await?;
            }
        }
        for origin in &checked_origins {
            let subject = Subject::LivenessChecks(origin.clone());
            let failures = windows::failures_in_window(
                &self.stack,
                &self.liveness_windows,
                &subject,
                event.time,
            )
            .await?;
            if failures >= i64::from(self.settings.liveness_failure_threshold) {
                self.time_out(event, origin, failures).await?;
            }
        }
        Ok(())
    }

    async fn time_out(
        &self,
        event: &AuthEvent,
        origin: &Origin,
        failures: i64,
    ) -> Result<(), AlertError> {
        let secs = self.settings.liveness_timeout_secs;
        let until = match timeout::time_out(&self.stack, origin, event.time, secs).await? {
            Timeout::Applied { until } => until,
            Timeout::AlreadyTimedOut => return Ok(()),
        };
        let subject = match origin {
            Origin::Device(device) => AlertSubject::Device(device.clone()),
            Origin::Source(ip) => AlertSubject::Source(*ip),
        };
        let mut alert = self.alert(
            format!("liveness-timeout:{}:{until}", origin.key()),
            AlertKind::LivenessTimeout,
            Severity::High,
            subject,
            format!(
                "{origin} timed out for {secs} s after {failures} failed liveness checks within {} s",
                self.liveness_windows.window_secs
            ),
            event,
            failures,
        );
        alert.details.insert(
            "window_secs".into(),
            self.liveness_windows.window_secs.into(),
        );
        alert.details.insert("timed_out_until".into(), until.into());
        alerter::raise_once(&self.stack, &alert).await?;
        Ok(())
    }

    async fn lock(&self, event: &AuthEvent, failures: i64) -> Result<(), AlertError> {
        let window = self.windows.window_secs;
        let reason = format!("{failures} failed sign-ins within {window} s");
        let lock = lockout::lock(
            &self.stack,
            &event.user_id,
            event.time,
            self.settings.lockout_secs,
            &reason,
        )
        .await?;
        let until = match lock {
            Lock::Applied { until } => {
                alerter::put_metric(&self.stack, Metric::Lockouts, 1.0, None).await;
                until
            }
            Lock::AlreadyApplied { until } => until,
            Lock::AlreadyLocked | Lock::NoUser => return Ok(()),
        };
        let mut alert = self.alert(
            format!("lockout:user#{}:{until}", event.user_id),
            AlertKind::Lockout,
            Severity::High,
            AlertSubject::User(event.user_id.clone()),
            format!(
                "user {} locked for {} s after {reason}",
                event.user_id, self.settings.lockout_secs
            ),
            event,
            failures,
        );
        alert.details.insert("locked_until".into(), until.into());
        alerter::raise_once(&self.stack, &alert).await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        alert_id: String,
        kind: AlertKind,
        severity: Severity,
        subject: AlertSubject,
        summary: String,
        event: &AuthEvent,
        failures: i64,
    ) -> SecurityAlert {
        let mut details = serde_json::Map::new();
        details.insert("failures".into(), failures.into());
        details.insert("window_secs".into(), self.windows.window_secs.into());
        details.insert("last_event_id".into(), event.event_id.to_string().into());
        if let AuthOutcome::Failure { reason } = event.outcome {
            details.insert(
                "last_reason".into(),
                serde_json::to_value(reason).unwrap_or_default(),
            );
        }
        SecurityAlert {
            alert_id,
            kind,
            severity,
            subject,
            summary,
            details,
            time: chrono::Utc::now(),
        }
    }
}

impl Handler for FailureAlerts {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let note =
            Notification::<AuthEvent>::parse(&message.body).map_err(HandlerError::permanent)?;
        if note.event.outcome == AuthOutcome::Success {
            // The subscription filters successes out; one that slips through is not a failure.
            return Ok(());
        }
        self.on_failure(&note.event)
            .await
            .map_err(HandlerError::transient)
    }
}

/// The embedded entry point (`facegate dev`, tests): the handler on the `alerts` queue and the
/// dead-letter watch, until `shutdown`.
pub async fn run_alerts(
    stack: Stack,
    worker: WorkerSettings,
    settings: AlertsSettings,
    health: Health,
    shutdown: CancellationToken,
) {
    let watch = tokio::spawn(dead_letters::watch(
        stack.clone(),
        Duration::from_secs(settings.dlq_check_secs),
        shutdown.clone(),
    ));
    let handler = FailureAlerts::new(stack.clone(), settings);
    role::run_worker(
        "alerts",
        &stack,
        Queue::Alerts,
        handler,
        worker,
        health,
        shutdown,
    )
    .await;
    let _ = watch.await;
}

/// `facegate alerts`: the standalone role.
pub async fn alerts_main(args: AlertsArgs) -> Result<(), RoleError> {
    let settings = args.alerts;
    role::standalone(
        "alerts",
        args.role,
        move |stack, _limiter, worker, health, shutdown| {
            run_alerts(stack, worker, settings, health, shutdown)
        },
    )
    .await
}
