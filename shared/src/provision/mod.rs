//! `facegate provision`: creates every resource of a stack, idempotently.
//!
//! The [`plan::Plan`] says what should exist; one module per service makes it so, each
//! reading what is there first and changing only what differs. Every resource is reported as
//! `created`, `updated` (with what changed) or `unchanged`, so a second run proves it changed
//! nothing. Order matters: topics before the queue policies that name them, dead-letter queues
//! before the redrive policies that point at them, queues (and their policies) before the bucket
//! notification S3 validates against them.

pub mod lambda;
pub mod plan;

mod cognito;
mod dynamodb;
mod rekognition;
mod s3;
mod sns;
mod sqs;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use aws_sdk_dynamodb::error::BuildError;

use crate::aws::{AwsSettings, Deployment, Service};
use crate::config::StackSettings;
use crate::user_pool::UserPool;
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
    /// Do not create the Cognito user pool and its trigger function (local only: on AWS they
    /// come from deploy/aws/facegate.yaml).
    #[arg(long, env = "FACEGATE_SKIP_USER_POOL")]
    pub skip_user_pool: bool,
    /// The facegate executable the local trigger function runs [default: this one].
    #[arg(long, env = "FACEGATE_TRIGGER_BINARY")]
    pub trigger_binary: Option<PathBuf>,
}

impl ProvisionArgs {
    /// The plan these settings make: everything, the user pool too where it is provisioned here.
    pub fn plan(&self) -> Result<Plan, ProvisionError> {
        let plan = Plan::new(&self.stack, !self.skip_collection);
        if self.skip_user_pool || self.aws.deployment == Deployment::Aws {
            return Ok(plan);
        }
        let binary = match &self.trigger_binary {
            Some(path) => std::path::absolute(path),
            None => std::env::current_exe(),
        }
        .map_err(|e| ProvisionError::Package {
            detail: format!("cannot tell where the facegate executable is: {e}"),
        })?;
        Ok(plan.with_sign_in(
            &self.stack,
            binary,
            trigger_environment(&self.aws, &self.stack, std::env::vars()),
        ))
    }
}

/// The settings the trigger function gets: where every service of this stack is, JSON logs,
/// sign-up confirmed without email (the local stack sends none), and every sign-in setting
/// this process was given (`vars`), so the function decides as a `facegate verifier` here would.
/// Never the verifier's bearer token: the function does not serve HTTP.
///
/// The function also gets the key pair to sign its Rekognition calls with
/// (`FACEGATE_REKOGNITION_*`): the emulator starts it with `AWS_ACCESS_KEY_ID` set to the
/// account id (a reserved variable it cannot be given), and the local engine checks every
/// signature against its own pair, which is this process's (`--rekognition-*`, else
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, else `test` / `test`, as the engine's own
/// default picks).
pub fn trigger_environment(
    aws: &AwsSettings,
    stack: &StackSettings,
    vars: impl Iterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    const FORWARDED: [&str; 9] = [
        "FACEGATE_VERIFY_",
        "FACEGATE_CHALLENGE_",
        "FACEGATE_SIGNIN_",
        "FACEGATE_SIGNUP_",
        "FACEGATE_LIVENESS_",
        "FACEGATE_FACE_CALLS_",
        "FACEGATE_FACE_BUDGET_",
        "FACEGATE_MAX_SELFIE_BYTES",
        "FACEGATE_AWS_",
    ];
    let mut env: BTreeMap<String, String> = BTreeMap::from([
        ("FACEGATE_ENV".into(), "local".into()),
        ("FACEGATE_PREFIX".into(), stack.prefix.to_string()),
        ("FACEGATE_LOG_FORMAT".into(), "json".into()),
        ("FACEGATE_SIGNUP_AUTO_CONFIRM".into(), "true".into()),
        ("AWS_REGION".into(), aws.region.clone()),
    ]);
    if let Some(bucket) = &stack.bucket {
        env.insert("FACEGATE_BUCKET".into(), bucket.clone());
    }
    for (service, variable) in [
        (Service::S3, "AWS_ENDPOINT_URL_S3"),
        (Service::Sqs, "AWS_ENDPOINT_URL_SQS"),
        (Service::Sns, "AWS_ENDPOINT_URL_SNS"),
        (Service::DynamoDb, "AWS_ENDPOINT_URL_DYNAMODB"),
        (Service::CloudWatch, "AWS_ENDPOINT_URL_CLOUDWATCH"),
        (Service::Rekognition, "AWS_ENDPOINT_URL_REKOGNITION"),
        (
            Service::Cognito,
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
        ),
    ] {
        if let Some(url) = aws.endpoint(service) {
            env.insert(variable.into(), url);
        }
    }
    let mut aws_key = None;
    let mut aws_secret = None;
    for (name, value) in vars {
        match name.as_str() {
            "AWS_ACCESS_KEY_ID" if !value.is_empty() => aws_key = Some(value.clone()),
            "AWS_SECRET_ACCESS_KEY" if !value.is_empty() => aws_secret = Some(value.clone()),
            _ => {}
        }
        if name == "RUST_LOG" || FORWARDED.iter().any(|p| name.starts_with(p)) {
            env.insert(name, value);
        }
    }
    let (key, secret) = match (
        &aws.rekognition_access_key_id,
        &aws.rekognition_secret_access_key,
    ) {
        (Some(key), Some(secret)) => (key.clone(), secret.clone()),
        _ => (
            aws_key.unwrap_or_else(|| LOCAL_KEY.into()),
            aws_secret.unwrap_or_else(|| LOCAL_KEY.into()),
        ),
    };
    env.insert("FACEGATE_REKOGNITION_ACCESS_KEY_ID".into(), key);
    env.insert("FACEGATE_REKOGNITION_SECRET_ACCESS_KEY".into(), secret);
    env
}

/// The key pair facegate's local clients sign with when the environment names none.
const LOCAL_KEY: &str = "test";

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
    #[error("could not build the trigger function's package: {detail}")]
    Package { detail: String },
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
    /// The user pool people sign in to, when it was provisioned.
    pub user_pool: Option<UserPool>,
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
    let plan = args.plan()?;
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
    if let Some(pool) = &report.user_pool {
        println!(
            "provisioned user pool id {}  app client id {}",
            pool.id, pool.client_id
        );
    }
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
    if let Some(sign_in) = &plan.sign_in {
        let function_arn =
            lambda::ensure_function(&clients.lambda, &sign_in.function, &mut report).await?;
        let pool =
            cognito::ensure_user_pool(&clients.cognito, &sign_in.pool, &function_arn, &mut report)
                .await?;
        report.user_pool = Some(pool);
    }
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

    #[test]
    fn the_trigger_function_gets_the_stack_and_the_sign_in_settings_only() {
        let stack = StackSettings::with_prefix("demo".parse().unwrap());
        let vars = [
            ("FACEGATE_VERIFY_THRESHOLD", "98"),
            ("FACEGATE_SIGNIN_POLICY", "password+face"),
            ("FACEGATE_VERIFIER_TOKEN", "secret"),
            ("FACEGATE_ENGINE_LISTEN", "127.0.0.1:1"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = trigger_environment(&AwsSettings::local(), &stack, vars.into_iter());
        assert_eq!(env["FACEGATE_PREFIX"], "demo");
        assert_eq!(env["FACEGATE_VERIFY_THRESHOLD"], "98");
        assert_eq!(env["FACEGATE_SIGNIN_POLICY"], "password+face");
        assert_eq!(
            env["AWS_ENDPOINT_URL_REKOGNITION"],
            crate::aws::LOCAL_ENGINE_URL
        );
        assert_eq!(
            env["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"],
            crate::aws::LOCAL_STACK_URL
        );
        for hidden in ["FACEGATE_VERIFIER_TOKEN", "FACEGATE_ENGINE_LISTEN", "HOME"] {
            assert!(
                !env.contains_key(hidden),
                "{hidden} must not reach the function"
            );
        }
        // No keys in this process: the local default, which the engine checks against too.
        assert_eq!(env["FACEGATE_REKOGNITION_ACCESS_KEY_ID"], "test");
        assert_eq!(env["FACEGATE_REKOGNITION_SECRET_ACCESS_KEY"], "test");
    }

    #[test]
    fn the_trigger_function_signs_rekognition_calls_as_this_process_does() {
        let stack = StackSettings::with_prefix("demo".parse().unwrap());
        let vars = || {
            [
                ("AWS_ACCESS_KEY_ID", "AKIDLOCAL"),
                ("AWS_SECRET_ACCESS_KEY", "s3cret"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter()
        };
        let env = trigger_environment(&AwsSettings::local(), &stack, vars());
        assert_eq!(env["FACEGATE_REKOGNITION_ACCESS_KEY_ID"], "AKIDLOCAL");
        assert_eq!(env["FACEGATE_REKOGNITION_SECRET_ACCESS_KEY"], "s3cret");
        // The reserved AWS variables themselves are the emulator's to set.
        assert!(!env.contains_key("AWS_ACCESS_KEY_ID"));
        let configured = AwsSettings {
            rekognition_access_key_id: Some("engine-key".into()),
            rekognition_secret_access_key: Some("engine-secret".into()),
            ..AwsSettings::local()
        };
        let env = trigger_environment(&configured, &stack, vars());
        assert_eq!(env["FACEGATE_REKOGNITION_ACCESS_KEY_ID"], "engine-key");
        assert_eq!(
            env["FACEGATE_REKOGNITION_SECRET_ACCESS_KEY"],
            "engine-secret"
        );
    }
}
