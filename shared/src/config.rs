//! The names and shared settings of one facegate stack.
//!
//! Every resource name is derived from one prefix (`FACEGATE_PREFIX`, default `facegate`) by
//! [`StackNames`], so several stacks can share an account and no role ever spells a name
//! itself. The settings every role shares (how often a message is retried, how long it stays
//! invisible) live in [`StackSettings`], a `clap::Args` group each role flattens into its
//! command line.

use std::fmt;
use std::str::FromStr;

/// The prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "facegate";
/// Where registration photos are uploaded: `registrations/<user_id>/<upload_id>.<ext>`.
pub const REGISTRATIONS_PREFIX: &str = "registrations/";
/// Where sign-in selfies are uploaded: `signin/<user_id>/<challenge_id>.jpg`.
pub const SIGNIN_PREFIX: &str = "signin/";
/// How long a dead-letter queue keeps a message: SQS's maximum, 14 days, to leave time to look.
pub const DLQ_RETENTION_SECS: u32 = 1_209_600;
/// Sign-in selfies are deleted by the verifier; the bucket's lifecycle rule removes any left
/// behind after this many days.
pub const SIGNIN_EXPIRY_DAYS: i32 = 1;

/// Why a prefix or a bucket name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {problem}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub problem: &'static str,
}

/// The prefix of every resource name: 1 to 40 lowercase ASCII letters, digits and `-`,
/// starting with a letter and not ending with `-`. That keeps every derived name valid for
/// S3 (bucket names are the strictest), SQS, SNS, DynamoDB and Rekognition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Prefix {
    type Err = NameError;

    fn from_str(value: &str) -> Result<Self, NameError> {
        let problem = if value.is_empty() || value.len() > 40 {
            Some("must be 1 to 40 characters")
        } else if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
            Some("must start with a lowercase letter")
        } else if value.ends_with('-') {
            Some("must not end with `-`")
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Some("may only contain lowercase ASCII letters, digits and `-`")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(NameError {
                what: "prefix",
                value: value.into(),
                problem,
            }),
            None => Ok(Self(value.into())),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An S3 bucket name as S3 accepts it (3 to 63 characters of lowercase letters, digits, `-`
/// and `.`, beginning and ending with a letter or digit). Used when `FACEGATE_BUCKET` overrides
/// the derived name, because bucket names are global across all AWS accounts.
fn parse_bucket_name(value: &str) -> Result<String, NameError> {
    let ok_edges =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = (3..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && ok_edges(value.chars().next())
        && ok_edges(value.chars().last())
        && !value.contains("..");
    if valid {
        Ok(value.into())
    } else {
        Err(NameError {
            what: "bucket name",
            value: value.into(),
            problem: "must be 3 to 63 lowercase letters, digits, `-` or `.`, starting and ending with a letter or digit",
        })
    }
}

/// The work queues. Each has a dead-letter queue named `<queue>-dlq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    /// S3 `ObjectCreated` events for `registrations/`; consumed by the indexer.
    Uploads,
    /// `FaceIndexed` from the `pipeline` topic; consumed by dedup-search.
    Dedup,
    /// Failed `AuthEvent`s from the `auth-events` topic; consumed by the failure-alert worker.
    Alerts,
}

impl Queue {
    pub const ALL: [Queue; 3] = [Queue::Uploads, Queue::Dedup, Queue::Alerts];

    fn suffix(self) -> &'static str {
        match self {
            Queue::Uploads => "uploads",
            Queue::Dedup => "dedup",
            Queue::Alerts => "alerts",
        }
    }
}

/// The SNS topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `FaceIndexed`, published by the indexer.
    Pipeline,
    /// `AuthEvent`, published by the verifier for every sign-in answer.
    AuthEvents,
    /// `SecurityAlert`, for security operations to subscribe to (with filter policies).
    SecurityAlerts,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Pipeline, Topic::AuthEvents, Topic::SecurityAlerts];

    fn suffix(self) -> &'static str {
        match self {
            Topic::Pipeline => "pipeline",
            Topic::AuthEvents => "auth-events",
            Topic::SecurityAlerts => "security-alerts",
        }
    }
}

/// The DynamoDB tables; their keys and indexes are in [`crate::tables`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Registrations,
    Users,
    AuthFailures,
    Challenges,
    ProcessedMessages,
    FaceBudget,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Registrations,
        Table::Users,
        Table::AuthFailures,
        Table::Challenges,
        Table::ProcessedMessages,
        Table::FaceBudget,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Table::Registrations => "registrations",
            Table::Users => "users",
            Table::AuthFailures => "auth-failures",
            Table::Challenges => "challenges",
            Table::ProcessedMessages => "processed-messages",
            Table::FaceBudget => "face-budget",
        }
    }
}

/// The name of every resource of one stack.
///
/// ```
/// use facegate_shared::config::{Prefix, Queue, StackNames};
/// let names = StackNames::new("demo".parse::<Prefix>().unwrap());
/// assert_eq!(names.queue(Queue::Uploads), "demo-uploads");
/// assert_eq!(names.dlq(Queue::Uploads), "demo-uploads-dlq");
/// assert_eq!(names.bucket(), "demo-photos");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackNames {
    prefix: Prefix,
    bucket: String,
}

impl StackNames {
    pub fn new(prefix: Prefix) -> Self {
        let bucket = format!("{prefix}-photos");
        Self { prefix, bucket }
    }

    /// The same names with an explicitly chosen bucket.
    pub fn with_bucket(self, bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..self
        }
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The bucket of registration photos and sign-in selfies.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn queue(&self, queue: Queue) -> String {
        format!("{}-{}", self.prefix, queue.suffix())
    }

    /// The dead-letter queue of `queue`.
    pub fn dlq(&self, queue: Queue) -> String {
        format!("{}-{}-dlq", self.prefix, queue.suffix())
    }

    pub fn topic(&self, topic: Topic) -> String {
        format!("{}-{}", self.prefix, topic.suffix())
    }

    pub fn table(&self, table: Table) -> String {
        format!("{}-{}", self.prefix, table.suffix())
    }

    /// The Rekognition collection holding every registered face.
    pub fn collection(&self) -> String {
        format!("{}-faces", self.prefix)
    }

    /// The Cognito user pool people sign in to.
    pub fn user_pool(&self) -> String {
        format!("{}-users", self.prefix)
    }

    /// The pool's app client for browsers and apps (no secret).
    pub fn app_client(&self) -> String {
        format!("{}-app", self.prefix)
    }

    /// The Lambda function that answers the pool's triggers (`facegate verifier --lambda`).
    pub fn trigger_function(&self) -> String {
        format!("{}-verifier-trigger", self.prefix)
    }
}

/// What every role needs to know about the stack. Every field is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct StackSettings {
    /// Prefix of every resource name (bucket, queues, topics, tables, collection), so several
    /// stacks can share one account.
    #[arg(long, env = "FACEGATE_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: Prefix,
    /// Bucket for photos, instead of `<prefix>-photos` (bucket names are global on AWS).
    #[arg(long, env = "FACEGATE_BUCKET", value_parser = parse_bucket_name)]
    pub bucket: Option<String>,
    /// Receives of one message before its queue moves it to the dead-letter queue.
    #[arg(long, env = "FACEGATE_MAX_RECEIVE_COUNT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_receive_count: u32,
    /// Seconds a received message stays invisible to other workers (the worker's heartbeat
    /// extends it while a handler runs).
    #[arg(long, env = "FACEGATE_VISIBILITY_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(0..=43_200))]
    pub visibility_timeout_secs: u32,
    /// Seconds the work queues keep an unprocessed message (dead-letter queues keep 14 days).
    #[arg(long, env = "FACEGATE_MESSAGE_RETENTION_SECS", default_value_t = 345_600,
          value_parser = clap::value_parser!(u32).range(60..=1_209_600))]
    pub message_retention_secs: u32,
    /// Seconds a receive waits for messages (long polling; 20 is SQS's maximum).
    #[arg(long, env = "FACEGATE_RECEIVE_WAIT_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub receive_wait_secs: u32,
}

impl StackSettings {
    /// The defaults with the given prefix, as tests build them.
    pub fn with_prefix(prefix: Prefix) -> Self {
        Self {
            prefix,
            bucket: None,
            max_receive_count: 5,
            visibility_timeout_secs: 60,
            message_retention_secs: 345_600,
            receive_wait_secs: 20,
        }
    }

    pub fn names(&self) -> StackNames {
        let names = StackNames::new(self.prefix.clone());
        match &self.bucket {
            Some(bucket) => names.with_bucket(bucket),
            None => names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        stack: StackSettings,
    }

    #[test]
    fn every_name_derives_from_the_prefix() {
        let names = StackNames::new("fg-test-1".parse().unwrap());
        assert_eq!(names.bucket(), "fg-test-1-photos");
        assert_eq!(names.queue(Queue::Dedup), "fg-test-1-dedup");
        assert_eq!(names.dlq(Queue::Alerts), "fg-test-1-alerts-dlq");
        assert_eq!(names.topic(Topic::AuthEvents), "fg-test-1-auth-events");
        assert_eq!(names.table(Table::AuthFailures), "fg-test-1-auth-failures");
        assert_eq!(names.collection(), "fg-test-1-faces");
        assert_eq!(names.user_pool(), "fg-test-1-users");
        assert_eq!(names.trigger_function(), "fg-test-1-verifier-trigger");
    }

    #[test]
    fn prefixes_that_would_make_invalid_names_are_refused() {
        for bad in [
            "",
            "Facegate",
            "1abc",
            "a_b",
            "abc-",
            "a.b",
            &"a".repeat(41),
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn defaults_and_overrides_from_the_command_line() {
        // The environment fills in what the command line leaves out: only check the built-in
        // defaults when nobody exported a setting.
        let cli = Cli::try_parse_from(["x"]).unwrap();
        if std::env::var_os("FACEGATE_PREFIX").is_none() {
            assert_eq!(cli.stack.prefix.as_str(), DEFAULT_PREFIX);
        }
        if std::env::var_os("FACEGATE_MAX_RECEIVE_COUNT").is_none() {
            assert_eq!(cli.stack.max_receive_count, 5);
        }
        let cli =
            Cli::try_parse_from(["x", "--prefix", "demo", "--bucket", "my.bucket-1"]).unwrap();
        assert_eq!(cli.stack.names().bucket(), "my.bucket-1");
        assert_eq!(cli.stack.names().queue(Queue::Uploads), "demo-uploads");
        assert!(Cli::try_parse_from(["x", "--bucket", "Bad_Bucket"]).is_err());
        assert!(Cli::try_parse_from(["x", "--max-receive-count", "0"]).is_err());
    }
}
