//! The photo bucket: the bucket itself, its S3 -> SQS notification for registrations, and the
//! lifecycle rule that expires forgotten sign-in selfies.
//!
//! Provisioning owns the bucket's notification and lifecycle configurations: when they differ
//! from the plan, they are replaced as a whole.

use std::collections::HashMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration, Event,
    ExpirationStatus, FilterRule, FilterRuleName, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};

use super::plan::{BucketPlan, NOTIFICATION_ID, REGISTRATION_EVENTS, SIGNIN_EXPIRY_RULE_ID};
use super::{Change, ProvisionError, Report, aws_error, build_error};

pub(super) async fn ensure_bucket(
    s3: &aws_sdk_s3::Client,
    plan: &BucketPlan,
    region: &str,
    queue_arns: &HashMap<String, String>,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let resource = format!("bucket {}", plan.name);
    let change = match s3.head_bucket().bucket(&plan.name).send().await {
        Ok(_) => Change::Unchanged,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
            let mut create = s3.create_bucket().bucket(&plan.name);
            // us-east-1 is the one region that refuses an explicit location constraint.
            if region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build(),
                );
            }
            create
                .send()
                .await
                .map_err(aws_error("CreateBucket", &resource))?;
            Change::Created
        }
        Err(e) => return Err(aws_error("HeadBucket", &resource)(e)),
    };
    report.record("bucket", &plan.name, change);

    let queue_arn =
        queue_arns
            .get(&plan.notify_queue)
            .ok_or_else(|| ProvisionError::Incomplete {
                call: "provision",
                resource: resource.clone(),
                what: "ARN of the notified queue",
            })?;
    let change = ensure_notification(s3, plan, queue_arn, &resource).await?;
    report.record(
        "notification",
        format!("{} -> {}", plan.name, plan.notify_queue),
        change,
    );

    let change = ensure_lifecycle(s3, plan, &resource).await?;
    report.record(
        "lifecycle",
        format!(
            "{} {}* after {} day(s)",
            plan.name, plan.expire_prefix, plan.expire_after_days
        ),
        change,
    );
    Ok(())
}

/// A queue configuration reduced to what matters: (queue ARN, events, key prefix).
type QueueTarget = (String, Vec<String>, Option<String>);

fn target(config: &QueueConfiguration) -> QueueTarget {
    let mut events: Vec<String> = config
        .events
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    events.sort();
    let prefix = config
        .filter
        .as_ref()
        .and_then(|f| f.key.as_ref())
        .and_then(|k| k.filter_rules.as_ref())
        .and_then(|rules| {
            rules
                .iter()
                .find(|r| r.name == Some(FilterRuleName::Prefix))
        })
        .and_then(|r| r.value.clone());
    (config.queue_arn.clone(), events, prefix)
}

async fn ensure_notification(
    s3: &aws_sdk_s3::Client,
    plan: &BucketPlan,
    queue_arn: &str,
    resource: &str,
) -> Result<Change, ProvisionError> {
    let desired = QueueConfiguration::builder()
        .id(NOTIFICATION_ID)
        .queue_arn(queue_arn)
        .events(Event::from(REGISTRATION_EVENTS))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value(plan.notify_prefix)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(build_error("PutBucketNotificationConfiguration", resource))?;
    let actual = s3
        .get_bucket_notification_configuration()
        .bucket(&plan.name)
        .send()
        .await
        .map_err(aws_error("GetBucketNotificationConfiguration", resource))?;
    let others = actual
        .topic_configurations
        .as_ref()
        .is_some_and(|c| !c.is_empty())
        || actual
            .lambda_function_configurations
            .as_ref()
            .is_some_and(|c| !c.is_empty());
    let actual: Vec<QueueTarget> = actual
        .queue_configurations
        .unwrap_or_default()
        .iter()
        .map(target)
        .collect();
    if actual == [target(&desired)] && !others {
        return Ok(Change::Unchanged);
    }
    // Saving a configuration makes S3 send an s3:TestEvent to the queue: only save when needed.
    s3.put_bucket_notification_configuration()
        .bucket(&plan.name)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(desired)
                .build(),
        )
        .send()
        .await
        .map_err(aws_error("PutBucketNotificationConfiguration", resource))?;
    Ok(if actual.is_empty() && !others {
        Change::Created
    } else {
        Change::Updated(vec!["queue configuration".into()])
    })
}

/// A lifecycle rule reduced to what matters: (id, enabled, prefix, days).
type ExpiryRule = (Option<String>, bool, Option<String>, Option<i32>);

fn expiry(rule: &LifecycleRule) -> ExpiryRule {
    #[allow(deprecated)] // Older rules carry the prefix outside the filter.
    let prefix = rule
        .filter
        .as_ref()
        .and_then(|f| f.prefix.clone())
        .or_else(|| rule.prefix.clone());
    (
        rule.id.clone(),
        rule.status == ExpirationStatus::Enabled,
        prefix,
        rule.expiration.as_ref().and_then(|e| e.days),
    )
}

async fn ensure_lifecycle(
    s3: &aws_sdk_s3::Client,
    plan: &BucketPlan,
    resource: &str,
) -> Result<Change, ProvisionError> {
    let desired = LifecycleRule::builder()
        .id(SIGNIN_EXPIRY_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(
            LifecycleRuleFilter::builder()
                .prefix(plan.expire_prefix)
                .build(),
        )
        .expiration(
            LifecycleExpiration::builder()
                .days(plan.expire_after_days)
                .build(),
        )
        .build()
        .map_err(build_error("PutBucketLifecycleConfiguration", resource))?;
    let actual = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(&plan.name)
        .send()
        .await
    {
        Ok(out) => out.rules.unwrap_or_default(),
        // S3 answers "no configuration" with an error, not an empty list.
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
        Err(e) => return Err(aws_error("GetBucketLifecycleConfiguration", resource)(e)),
    };
    let actual: Vec<ExpiryRule> = actual.iter().map(expiry).collect();
    if actual == [expiry(&desired)] {
        return Ok(Change::Unchanged);
    }
    let configuration = BucketLifecycleConfiguration::builder()
        .rules(desired)
        .build()
        .map_err(build_error("PutBucketLifecycleConfiguration", resource))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(&plan.name)
        .lifecycle_configuration(configuration)
        .send()
        .await
        .map_err(aws_error("PutBucketLifecycleConfiguration", resource))?;
    Ok(if actual.is_empty() {
        Change::Created
    } else {
        Change::Updated(vec!["rules".into()])
    })
}
