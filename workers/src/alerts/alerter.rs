//! Raising an alert: a `SecurityAlert` on the `security-alerts` topic (with its `kind` and
//! `severity` message attributes, for subscription filter policies), at most once per
//! `alert_id`, and the CloudWatch metrics in namespace `Facegate`.
//!
//! "Once" is a marker `alert#<alert_id>` in `processed-messages`, written (conditionally)
//! before publishing and removed again if publishing fails, so a redelivered cause does not
//! alert twice and a failed publish is retried.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use facegate_shared::config::{Table, Topic};
use facegate_shared::events::{self, SecurityAlert};
use facegate_shared::stack::Stack;
use facegate_shared::tables::processed_messages;

use super::AlertError;

/// The CloudWatch namespace of facegate's metrics.
pub const NAMESPACE: &str = "Facegate";

/// The metrics facegate puts into CloudWatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    FailedLogins,
    Lockouts,
    DuplicateRegistrations,
    DeadLetters,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::FailedLogins => "FailedLogins",
            Metric::Lockouts => "Lockouts",
            Metric::DuplicateRegistrations => "DuplicateRegistrations",
            Metric::DeadLetters => "DeadLetters",
        }
    }
}

/// How long an alert's marker is kept: a redelivery comes within minutes, but a dead-letter
/// queue is checked for days.
const ALERT_MARKER_SECS: i64 = 4 * 86_400;

/// Publishes `alert` unless an alert with its id was published before. Returns whether it was
/// published now.
pub async fn raise_once(stack: &Stack, alert: &SecurityAlert) -> Result<bool, AlertError> {
    let marker = format!("alert#{}", alert.alert_id);
    let put = stack
        .clients
        .dynamodb
        .put_item()
        .table_name(stack.table(Table::ProcessedMessages))
        .item(
            processed_messages::MESSAGE_KEY,
            AttributeValue::S(marker.clone()),
        )
        .item(
            processed_messages::EXPIRES_AT,
            AttributeValue::N((Utc::now().timestamp() + ALERT_MARKER_SECS).to_string()),
        )
        .condition_expression("attribute_not_exists(#k)")
        .expression_attribute_names("#k", processed_messages::MESSAGE_KEY)
        .send()
        .await;
    match put {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            tracing::info!(alert_id = %alert.alert_id, "alert already raised");
            return Ok(false);
        }
        Err(e) => return Err(AlertError::dynamodb("PutItem processed-messages", e)),
    }
    let published = events::publish(
        &stack.clients.sns,
        stack.topic_arn(Topic::SecurityAlerts),
        alert,
    )
    .await;
    if let Err(e) = published {
        // Take the marker back so the retry publishes; if even that fails, the alert is lost
        // for this cause: say so loudly.
        let undo = stack
            .clients
            .dynamodb
            .delete_item()
            .table_name(stack.table(Table::ProcessedMessages))
            .key(processed_messages::MESSAGE_KEY, AttributeValue::S(marker))
            .send()
            .await;
        if let Err(undo) = undo {
            tracing::error!(alert_id = %alert.alert_id, error = %facegate_shared::report::chain(&undo), "alert not published and its marker not removed: it will not be retried");
        }
        return Err(AlertError::Publish(e));
    }
    tracing::warn!(alert_id = %alert.alert_id, kind = alert.kind.as_str(), severity = alert.severity.as_str(), summary = %alert.summary, "security alert raised");
    Ok(true)
}

/// Puts one data point of `metric` (dimension `Stack` = the prefix, and any extra dimension).
/// A CloudWatch failure is logged, never fatal: metrics must not hold up alerting.
pub async fn put_metric(stack: &Stack, metric: Metric, value: f64, extra: Option<(&str, &str)>) {
    let mut dimensions = vec![
        Dimension::builder()
            .name("Stack")
            .value(stack.names.prefix().as_str())
            .build(),
    ];
    if let Some((name, value)) = extra {
        dimensions.push(Dimension::builder().name(name).value(value).build());
    }
    let datum = MetricDatum::builder()
        .metric_name(metric.name())
        .value(value)
        .unit(StandardUnit::Count)
        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
            Utc::now().timestamp(),
        ))
        .set_dimensions(Some(dimensions))
        .build();
    let result = stack
        .clients
        .cloudwatch
        .put_metric_data()
        .namespace(NAMESPACE)
        .metric_data(datum)
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(metric = metric.name(), error = %facegate_shared::report::chain(&e), "PutMetricData failed");
    }
}
