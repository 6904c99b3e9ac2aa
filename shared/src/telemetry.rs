//! Logs and spans: JSON lines in containers, readable lines on a terminal.
//!
//! Every role calls [`init`] once at start-up. Logs go to stderr, so a command's own output on
//! stdout (the provisioning report, a benchmark's table) stays clean; `auto` picks JSON when
//! stderr is not a terminal (a container's log driver, a pipe) and readable text when it is.
//! Work on one message or request runs inside [`message_span`] or [`request_span`], so every
//! log line it writes carries the message or request id.

use std::io::IsTerminal;

use tracing::Span;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (containers), readable text when it is.
    Auto,
    /// One JSON object per line, for CloudWatch Logs, Loki and friends.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Logging settings, shared by every subcommand.
#[derive(clap::Args, Clone, Debug)]
pub struct LogSettings {
    /// Log line format.
    #[arg(long, env = "FACEGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Which logs to write, as a tracing filter (`info`, `facegate_shared=debug,info`).
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_level: "info".into(),
        }
    }
}

impl LogFormat {
    /// `Auto` decided for this process.
    fn resolve(self) -> LogFormat {
        match self {
            LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            chosen => chosen,
        }
    }
}

/// Installs the global subscriber. Safe to call more than once (tests do): later calls
/// leave the first subscriber in place.
pub fn init(settings: &LogSettings) {
    let (filter, bad_filter) = match EnvFilter::try_new(&settings.log_level) {
        Ok(filter) => (filter, None),
        // A typo in RUST_LOG should not cost the logs: fall back, and say so once installed.
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match settings.log_format.resolve() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        _ => builder.with_target(false).try_init(),
    };
    if let (Ok(()), Some(e)) = (installed, bad_filter) {
        tracing::warn!(filter = %settings.log_level, error = %e, "invalid log filter; logging at info");
    }
}

/// The span for handling one queue message: every log line inside carries the queue and the
/// SQS message id.
pub fn message_span(queue: &str, message_id: &str) -> Span {
    tracing::info_span!("message", queue, message_id)
}

/// The span for serving one HTTP request (or one Cognito trigger invocation).
pub fn request_span(method: &str, path: &str, request_id: &str) -> Span {
    tracing::info_span!("request", method, path, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogSettings,
    }

    #[test]
    fn init_twice_is_harmless_and_spans_carry_ids() {
        init(&LogSettings {
            log_format: LogFormat::Json,
            log_level: "not a [valid filter".into(),
        });
        init(&LogSettings::default());
        let span = message_span("facegate-uploads", "m-1");
        let _entered = span.enter();
        tracing::info!("inside a message span");
    }

    #[test]
    fn formats_parse_from_the_command_line() {
        let cli =
            Cli::try_parse_from(["x", "--log-format", "json", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.log.log_level, "debug");
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
        assert_eq!(LogFormat::Json.resolve(), LogFormat::Json);
    }
}
