//! The DynamoDB tables of [`crate::tables`]: on-demand, with their indexes and TTL.
//!
//! A missing table is created; a missing index is added; TTL is switched on where the design
//! says items expire. A table whose keys differ from the design is reported, not changed:
//! changing keys means a new table and a data migration, which is not provisioning's call.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType as DynamoKeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use super::{Change, ProvisionError, Report, aws_error, build_error};
use crate::tables::{IndexSpec, KeyAttribute, KeyType, TableSpec};

/// How long to wait for a table or index to become ACTIVE (seconds on AWS, instant locally).
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn ensure_tables(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &[(String, TableSpec)],
    report: &mut Report,
) -> Result<(), ProvisionError> {
    for (name, spec) in tables {
        let change = ensure_table(dynamodb, name, spec).await?;
        report.record("table", name, change);
    }
    Ok(())
}

fn definition(
    key: &KeyAttribute,
    call: &'static str,
    resource: &str,
) -> Result<AttributeDefinition, ProvisionError> {
    let kind = match key.kind {
        KeyType::String => ScalarAttributeType::S,
        KeyType::Number => ScalarAttributeType::N,
    };
    AttributeDefinition::builder()
        .attribute_name(key.name)
        .attribute_type(kind)
        .build()
        .map_err(build_error(call, resource))
}

fn key_schema(
    partition: &KeyAttribute,
    sort: Option<&KeyAttribute>,
    call: &'static str,
    resource: &str,
) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    let mut keys = vec![(partition, DynamoKeyType::Hash)];
    keys.extend(sort.map(|s| (s, DynamoKeyType::Range)));
    keys.into_iter()
        .map(|(key, kind)| {
            KeySchemaElement::builder()
                .attribute_name(key.name)
                .key_type(kind)
                .build()
                .map_err(build_error(call, resource))
        })
        .collect()
}

fn index(
    spec: &IndexSpec,
    call: &'static str,
    resource: &str,
) -> Result<GlobalSecondaryIndex, ProvisionError> {
    GlobalSecondaryIndex::builder()
        .index_name(spec.name)
        .set_key_schema(Some(key_schema(
            &spec.partition_key,
            spec.sort_key.as_ref(),
            call,
            resource,
        )?))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_error(call, resource))
}

/// Every attribute a key of the table or of an index uses, once.
fn definitions(
    spec: &TableSpec,
    call: &'static str,
    resource: &str,
) -> Result<Vec<AttributeDefinition>, ProvisionError> {
    let mut keys = vec![spec.partition_key];
    keys.extend(spec.sort_key);
    for index in spec.indexes {
        keys.push(index.partition_key);
        keys.extend(index.sort_key);
    }
    let mut seen = Vec::new();
    keys.retain(|k| {
        let new = !seen.contains(&k.name);
        seen.push(k.name);
        new
    });
    keys.iter().map(|k| definition(k, call, resource)).collect()
}

async fn ensure_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    spec: &TableSpec,
) -> Result<Change, ProvisionError> {
    let resource = format!("table {name}");
    let existing = match dynamodb.describe_table().table_name(name).send().await {
        Ok(out) => out.table,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => return Err(aws_error("DescribeTable", &resource)(e)),
    };
    let mut updated = Vec::new();
    let created = match existing {
        None => {
            const CALL: &str = "CreateTable";
            dynamodb
                .create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .set_attribute_definitions(Some(definitions(spec, CALL, &resource)?))
                .set_key_schema(Some(key_schema(
                    &spec.partition_key,
                    spec.sort_key.as_ref(),
                    CALL,
                    &resource,
                )?))
                .set_global_secondary_indexes(if spec.indexes.is_empty() {
                    None
                } else {
                    Some(
                        spec.indexes
                            .iter()
                            .map(|i| index(i, CALL, &resource))
                            .collect::<Result<_, _>>()?,
                    )
                })
                .send()
                .await
                .map_err(aws_error(CALL, &resource))?;
            wait_until_active(dynamodb, name).await?;
            true
        }
        Some(table) => {
            check_keys(&table, spec, &resource)?;
            let present: Vec<&str> = table
                .global_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name())
                .collect();
            for missing in spec.indexes.iter().filter(|i| !present.contains(&i.name)) {
                const CALL: &str = "UpdateTable";
                let gsi = index(missing, CALL, &resource)?;
                let create = CreateGlobalSecondaryIndexAction::builder()
                    .index_name(missing.name)
                    .set_key_schema(Some(gsi.key_schema))
                    .set_projection(gsi.projection)
                    .build()
                    .map_err(build_error(CALL, &resource))?;
                // One index per UpdateTable call, each waited for: DynamoDB allows no more.
                dynamodb
                    .update_table()
                    .table_name(name)
                    .set_attribute_definitions(Some(definitions(spec, CALL, &resource)?))
                    .global_secondary_index_updates(
                        GlobalSecondaryIndexUpdate::builder().create(create).build(),
                    )
                    .send()
                    .await
                    .map_err(aws_error(CALL, &resource))?;
                wait_until_active(dynamodb, name).await?;
                updated.push(format!("index {}", missing.name));
            }
            false
        }
    };
    if let Some(attribute) = spec.ttl_attribute {
        let ttl = dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeTimeToLive", &resource))?
            .time_to_live_description;
        let enabled = ttl.is_some_and(|d| {
            matches!(
                d.time_to_live_status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) && d.attribute_name.as_deref() == Some(attribute)
        });
        if !enabled {
            const CALL: &str = "UpdateTimeToLive";
            let specification = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .map_err(build_error(CALL, &resource))?;
            dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(specification)
                .send()
                .await
                .map_err(aws_error(CALL, &resource))?;
            updated.push(format!("TTL on {attribute}"));
        }
    }
    Ok(match (created, updated.is_empty()) {
        (true, _) => Change::Created,
        (false, true) => Change::Unchanged,
        (false, false) => Change::Updated(updated),
    })
}

/// Refuses a table whose primary key is not the designed one.
fn check_keys(
    table: &TableDescription,
    spec: &TableSpec,
    resource: &str,
) -> Result<(), ProvisionError> {
    let key_of = |kind: DynamoKeyType| {
        table
            .key_schema()
            .iter()
            .find(|k| k.key_type == kind)
            .map(|k| k.attribute_name.as_str())
    };
    let actual = (key_of(DynamoKeyType::Hash), key_of(DynamoKeyType::Range));
    let desired = (Some(spec.partition_key.name), spec.sort_key.map(|k| k.name));
    if actual == desired {
        return Ok(());
    }
    Err(ProvisionError::Drift {
        resource: resource.into(),
        detail: format!("key is {actual:?}, the design says {desired:?}"),
    })
}

async fn wait_until_active(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    let resource = format!("table {name}");
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let table = dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeTable", &resource))?
            .table;
        let ready = table.as_ref().is_some_and(|t| {
            t.table_status == Some(TableStatus::Active)
                && t.global_secondary_indexes().iter().all(|i| {
                    i.index_status
                        .as_ref()
                        .is_none_or(|s| s.as_str() == "ACTIVE")
                })
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProvisionError::NotReady {
                resource,
                waited_secs: READY_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
