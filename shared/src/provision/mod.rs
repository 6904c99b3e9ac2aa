//! `facegate provision`: creates every resource of a stack, idempotently.
//!
//! The [`plan::Plan`] says what should exist; one module per service makes it so, each
//! reading what is there first and changing only what differs. Every resource is reported as
//! `created`, `updated` (with what changed) or `unchanged`, so a second run proves it changed
//! nothing. Order matters: topics before the queue policies that name them, dead-letter queues
//! before the redrive policies that point at them, queues (and their policies) before the bucket
//! notification S3 validates against them.

pub mod plan;

mod dynamodb;
mod rekognition;
mod s3;
mod sns;
mod sqs;

use std::fmt;

use aws_sdk_dynamodb::error::BuildError;

use crate::aws::{AwsSettings, Service};
use crate::config::StackSettings;
pub use plan::Plan;

/// `facegate provision`.
#[derive(clap::Args, Clone, Debug)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub aws: AwsSettings,
    #[command(flatten)]
    pub stack: StackSettings,
    /// Print the plan and exit without calling AWS.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not create the Rekognition collection (when the face engine is not running).
    #[arg(long, env = "FACEGATE_SKIP_COLLECTION")]
    pub skip_collection: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{call} for {resource} failed")]
    Aws {
        call: &'static str,
        resource: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "cannot reach the face engine at {endpoint} (Rekognition endpoint) to create collection {collection}: \
         start it with `facegate engine`, or pass --skip-collection"
    )]
    EngineUnreachable {
        endpoint: String,
        collection: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "{resource} exists but differs from the design in a way provisioning does not change: {detail}"
    )]
    Drift { resource: String, detail: String },
    #[error("{resource} was not ready after {waited_secs} s")]
    NotReady { resource: String, waited_secs: u64 },
    #[error("{call} for {resource}: AWS returned no {what}")]
    Incomplete {
        call: &'static str,
        resource: String,
        what: &'static str,
    },
    #[error("could not build the {call} request for {resource}")]
    Request {
        call: &'static str,
        resource: String,
        #[source]
        source: BuildError,
    },
}

/// Mapper for `map_err`: an AWS call on a resource failed.
fn aws_error<E>(call: &'static str, resource: &str) -> impl FnOnce(E) -> ProvisionError + use<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let resource = resource.to_string();
    move |source| ProvisionError::Aws {
        call,
        resource,
        source: Box::new(source),
    }
}

/// Mapper for `map_err`: a request builder refused its input (a bug in the plan, not in AWS).
fn build_error(
    call: &'static str,
    resource: &str,
) -> impl FnOnce(BuildError) -> ProvisionError + use<> {
    let resource = resource.to_string();
    move |source| ProvisionError::Request {
        call,
        resource,
        source,
    }
}

/// What provisioning did to one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Existed; these settings were brought in line.
    Updated(Vec<String>),
    Unchanged,
    Skipped(&'static str),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Created => f.write_str("created"),
            Change::Updated(_) => f.write_str("updated"),
            Change::Unchanged => f.write_str("unchanged"),
            Change::Skipped(_) => f.write_str("skipped"),
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
}

/// Everything provisioning did, printed line by line as it happens.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    fn record(&mut self, kind: &'static str, name: impl Into<String>, change: Change) {
        let outcome = Outcome {
            kind,
            name: name.into(),
            change,
        };
        let detail = match &outcome.change {
            Change::Updated(what) => format!(" ({})", what.join(", ")),
            Change::Skipped(why) => format!(" ({why})"),
            _ => String::new(),
        };
        println!(
            "{:<9} {:<12} {}{detail}",
            outcome.change.to_string(),
            outcome.kind,
            outcome.name
        );
        self.outcomes.push(outcome);
    }

    fn count(&self, wanted: fn(&Change) -> bool) -> usize {
        self.outcomes.iter().filter(|o| wanted(&o.change)).count()
    }
}

/// Runs `facegate provision`.
pub async fn run(args: ProvisionArgs) -> Result<(), ProvisionError> {
    let plan = Plan::new(&args.stack, !args.skip_collection);
    if args.dry_run {
        print!("{plan}");
        println!("dry run: nothing was created or changed");
        return Ok(());
    }
    let report = apply(&plan, &args.aws).await?;
    let created = report.count(|c| matches!(c, Change::Created));
    let updated = report.count(|c| matches!(c, Change::Updated(_)));
    let unchanged = report.count(|c| matches!(c, Change::Unchanged));
    println!(
        "provisioned stack `{}`: {created} created, {updated} updated, {unchanged} unchanged",
        plan.prefix
    );
    tracing::info!(stack = %plan.prefix, created, updated, unchanged, "provisioned");
    Ok(())
}

/// Makes the stack look like `plan`; returns what it did.
pub async fn apply(plan: &Plan, aws: &AwsSettings) -> Result<Report, ProvisionError> {
    let clients = aws.clients().await;
    let mut report = Report::default();
    let topic_arns = sns::ensure_topics(&clients.sns, plan, &mut report).await?;
    let queue_arns = sqs::ensure_queues(&clients.sqs, plan, &topic_arns, &mut report).await?;
    sns::ensure_subscriptions(&clients.sns, plan, &topic_arns, &queue_arns, &mut report).await?;
    s3::ensure_bucket(
        &clients.s3,
        &plan.bucket,
        &aws.region,
        &queue_arns,
        &mut report,
    )
    .await?;
    dynamodb::ensure_tables(&clients.dynamodb, &plan.tables, &mut report).await?;
    let change = if plan.create_collection {
        let endpoint = aws
            .endpoint(Service::Rekognition)
            .unwrap_or_else(|| "AWS Rekognition".into());
        rekognition::ensure_collection(&clients.rekognition, &plan.collection, &endpoint).await?
    } else {
        Change::Skipped("--skip-collection")
    };
    report.record("collection", &plan.collection, change);
    Ok(report)
}

/// Whether two attribute values mean the same. JSON documents (policies) are compared as JSON,
/// with numbers and numeric strings treated alike: AWS returns `"maxReceiveCount": 5` whether
/// it was sent as `5` or `"5"`, and re-orders keys.
fn same_setting(actual: Option<&str>, desired: &str) -> bool {
    let Some(actual) = actual else {
        return desired.is_empty();
    };
    match (serde_json::from_str(actual), serde_json::from_str(desired)) {
        (Ok(a @ serde_json::Value::Object(_)), Ok(d @ serde_json::Value::Object(_))) => {
            normalise(a) == normalise(d)
        }
        _ => actual == desired,
    }
}

fn normalise(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_compare_as_json_when_they_are_json() {
        assert!(same_setting(
            Some(r#"{"maxReceiveCount":"5","deadLetterTargetArn":"a"}"#),
            r#"{"deadLetterTargetArn":"a","maxReceiveCount":5}"#
        ));
        assert!(!same_setting(
            Some(r#"{"maxReceiveCount":4}"#),
            r#"{"maxReceiveCount":5}"#
        ));
        assert!(same_setting(Some("60"), "60"));
        assert!(!same_setting(None, "60"));
        assert!(same_setting(None, ""));
    }
}
