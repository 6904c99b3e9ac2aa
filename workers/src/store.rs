//! The registration store: every DynamoDB read and write of the registration pipeline.
//!
//! Each write is conditional on the state it moves from, so a state never goes backwards and a
//! redelivered message that lost a race finds out instead of overwriting (the `bool` or
//! [`Activation`] answers say whether the write happened). The one multi-item write is
//! [`RegistrationStore::activate`]: a registration becomes ACTIVE, the user's item points at it
//! and the user's previous ACTIVE registration becomes REPLACED, all in one transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{BuildError, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, SecondsFormat, Utc};
use facegate_shared::config::Table;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::registration::{
    DuplicateMatch, ItemError, RegistrationRecord, RegistrationState,
};
use facegate_shared::stack::Stack;
use facegate_shared::tables::{registrations as reg, users};
use facegate_shared::worker::BoxError;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{call} on {table} failed")]
    Aws {
        call: &'static str,
        table: String,
        #[source]
        source: BoxError,
    },
    #[error("an item of {table} is not a valid registration")]
    Item {
        table: String,
        #[source]
        source: ItemError,
    },
    #[error("could not build the {call} request")]
    Request {
        call: &'static str,
        #[source]
        source: BuildError,
    },
}

/// A registration record with what only the pipeline cares about.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRegistration {
    pub record: RegistrationRecord,
    /// Dedup-search already published the duplicate alert of this registration.
    pub alert_published: bool,
}

/// Which registration of a user signs in, as the `users` item says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveRegistration {
    pub upload_id: UploadId,
    pub face_id: String,
    pub created_at: DateTime<Utc>,
}

impl ActiveRegistration {
    /// Whether this registration is newer than `record`: later `created_at`, ties broken by
    /// upload id so that every process agrees on one order.
    pub fn is_newer_than(&self, record: &RegistrationRecord) -> bool {
        (self.created_at, &self.upload_id) > (record.created_at, &record.upload_id)
    }
}

/// What [`RegistrationStore::activate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The registration is ACTIVE and the previous one (if any) REPLACED.
    Committed,
    /// A condition failed: something changed since it was read. Read again and decide again.
    Conflict,
}

/// The registrations and users tables.
#[derive(Clone, Debug)]
pub struct RegistrationStore {
    dynamodb: aws_sdk_dynamodb::Client,
    registrations: String,
    users: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Times in the `users` item: always nine fraction digits and `Z`, so that their strings sort
/// as the times do whoever wrote them (a plain `to_rfc3339` varies its fraction digits).
fn sortable_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// `SET #a0 = :v0, #a1 = :v1, ...` with its name and value maps: attribute names go through
/// placeholders because some (`state`, `key`) are DynamoDB reserved words.
struct SetExpression {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl SetExpression {
    fn new(attributes: Vec<(&str, AttributeValue)>) -> Self {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut parts = Vec::new();
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name.to_string());
            values.insert(format!(":v{i}"), value);
            parts.push(format!("#a{i} = :v{i}"));
        }
        Self {
            expression: format!("SET {}", parts.join(", ")),
            names,
            values,
        }
    }

    /// Adds a condition that the `state` attribute is one of `states`.
    fn condition_state_in(&mut self, states: &[&str]) -> String {
        self.names.insert("#state".into(), reg::STATE.into());
        let placeholders: Vec<String> = states
            .iter()
            .enumerate()
            .map(|(i, code)| {
                self.values.insert(format!(":s{i}"), s(*code));
                format!(":s{i}")
            })
            .collect();
        format!("#state IN ({})", placeholders.join(", "))
    }
}

/// The attributes a state writes: `state` itself and what the state carries (the same
/// spelling as [`RegistrationRecord::to_item`]).
fn state_attributes(state: &RegistrationState) -> Vec<(&'static str, AttributeValue)> {
    let mut attributes = vec![(reg::STATE, s(state.code()))];
    match state {
        RegistrationState::Rejected { reasons } => {
            // Serde's spelling of a reason (`no-face`), as the record's JSON shows it.
            let codes = reasons
                .iter()
                .map(|reason| match serde_json::to_value(reason) {
                    Ok(serde_json::Value::String(code)) => s(code),
                    _ => s(format!("{reason:?}")),
                })
                .collect();
            attributes.push((reg::REASONS, AttributeValue::L(codes)));
        }
        RegistrationState::Failed { detail } => attributes.push((reg::DETAIL, s(detail))),
        RegistrationState::Replaced { by_upload_id } => {
            attributes.push((reg::REPLACED_BY, s(by_upload_id.as_str())));
        }
        RegistrationState::Pending | RegistrationState::Indexed | RegistrationState::Active => {}
    }
    attributes
}

fn duplicate_attributes(duplicate: &DuplicateMatch) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (reg::DUPLICATE_OF_USER, s(duplicate.user_id.as_str())),
        (reg::DUPLICATE_OF_FACE, s(&duplicate.face_id)),
        (
            reg::DUPLICATE_SIMILARITY,
            AttributeValue::N(duplicate.similarity.to_string()),
        ),
    ]
}

fn registration_key(user: &UserId, upload: &UploadId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (reg::USER_ID.to_string(), s(user.as_str())),
        (reg::UPLOAD_ID.to_string(), s(upload.as_str())),
    ])
}

/// Whether an SDK error is DynamoDB's "your condition did not hold".
fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    error: &SdkError<E>,
) -> bool {
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

impl RegistrationStore {
    pub fn new(stack: &Stack) -> Self {
        Self {
            dynamodb: stack.clients.dynamodb.clone(),
            registrations: stack.table(Table::Registrations),
            users: stack.table(Table::Users),
        }
    }

    fn aws(&self, call: &'static str, table: &str) -> impl FnOnce(BoxError) -> StoreError {
        let table = table.to_string();
        move |source| StoreError::Aws {
            call,
            table,
            source,
        }
    }

    fn parse(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<StoredRegistration, StoreError> {
        let record = RegistrationRecord::from_item(item).map_err(|source| StoreError::Item {
            table: self.registrations.clone(),
            source,
        })?;
        let alert_published = matches!(
            item.get(reg::ALERT_PUBLISHED),
            Some(AttributeValue::Bool(true))
        );
        Ok(StoredRegistration {
            record,
            alert_published,
        })
    }

    /// One registration, read consistently (it may have been written a moment ago).
    pub async fn get(
        &self,
        user: &UserId,
        upload: &UploadId,
    ) -> Result<Option<StoredRegistration>, StoreError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.registrations)
            .set_key(Some(registration_key(user, upload)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws("GetItem", &self.registrations)(e.into()))?;
        out.item.as_ref().map(|item| self.parse(item)).transpose()
    }

    /// Every registration of a user (one partition), read consistently.
    pub async fn of_user(&self, user: &UserId) -> Result<Vec<StoredRegistration>, StoreError> {
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.registrations)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", reg::USER_ID)
            .expression_attribute_values(":user", s(user.as_str()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut found = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| self.aws("Query", &self.registrations)(e.into()))?;
            found.push(self.parse(&item)?);
        }
        Ok(found)
    }

    /// The registration holding `face_id`, through the `by-face` index. The index is
    /// eventually consistent: a face recorded a moment ago may not be found yet.
    pub async fn by_face(&self, face_id: &str) -> Result<Option<StoredRegistration>, StoreError> {
        let out = self
            .dynamodb
            .query()
            .table_name(&self.registrations)
            .index_name(reg::BY_FACE)
            .key_condition_expression("#face = :face")
            .expression_attribute_names("#face", reg::FACE_ID)
            .expression_attribute_values(":face", s(face_id))
            .limit(1)
            .send()
            .await
            .map_err(|e| self.aws("Query by-face", &self.registrations)(e.into()))?;
        out.items().first().map(|item| self.parse(item)).transpose()
    }

    /// Writes `record` (new, PENDING or already final) unless a record of the same upload
    /// exists. True when this call created it.
    pub async fn create(&self, record: &RegistrationRecord) -> Result<bool, StoreError> {
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.registrations)
            .set_item(Some(record.to_item()))
            .condition_expression("attribute_not_exists(#user)")
            .expression_attribute_names("#user", reg::USER_ID)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.aws("PutItem", &self.registrations)(e.into())),
        }
    }

    /// PENDING -> INDEXED with its face, only if still PENDING without a face. False if another
    /// attempt got there first (read the record to see what it recorded).
    pub async fn record_indexed(
        &self,
        user: &UserId,
        upload: &UploadId,
        face_id: &str,
    ) -> Result<bool, StoreError> {
        let mut set = SetExpression::new(vec![
            (reg::STATE, s(RegistrationState::Indexed.code())),
            (reg::FACE_ID, s(face_id)),
            (reg::UPDATED_AT, s(Utc::now().to_rfc3339())),
        ]);
        let state = set.condition_state_in(&[RegistrationState::Pending.code()]);
        set.names.insert("#face".into(), reg::FACE_ID.into());
        let condition = format!("{state} AND attribute_not_exists(#face)");
        self.conditional_update(user, upload, set, condition).await
    }

    /// Moves a registration to `next` (a final state) if it is in one of the states `next` may
    /// follow, with the duplicate it matched, if any. False if the condition did not hold.
    /// Never moves an ACTIVE registration: only [`activate`](Self::activate) replaces one,
    /// together with the users item that points at it.
    pub async fn finish(
        &self,
        user: &UserId,
        upload: &UploadId,
        next: &RegistrationState,
        duplicate_of: Option<&DuplicateMatch>,
    ) -> Result<bool, StoreError> {
        let mut attributes = state_attributes(next);
        attributes.push((reg::UPDATED_AT, s(Utc::now().to_rfc3339())));
        if let Some(duplicate) = duplicate_of {
            attributes.extend(duplicate_attributes(duplicate));
        }
        let mut set = SetExpression::new(attributes);
        let from: Vec<&str> = RegistrationState::predecessors(next)
            .into_iter()
            .filter(|code| *code != RegistrationState::Active.code())
            .collect();
        let condition = set.condition_state_in(&from);
        self.conditional_update(user, upload, set, condition).await
    }

    /// Notes that the duplicate alert of this registration went out.
    pub async fn mark_alert_published(
        &self,
        user: &UserId,
        upload: &UploadId,
    ) -> Result<(), StoreError> {
        let mut set = SetExpression::new(vec![(reg::ALERT_PUBLISHED, AttributeValue::Bool(true))]);
        set.names.insert("#user".into(), reg::USER_ID.into());
        self.conditional_update(user, upload, set, "attribute_exists(#user)".into())
            .await
            .map(|_| ())
    }

    async fn conditional_update(
        &self,
        user: &UserId,
        upload: &UploadId,
        set: SetExpression,
        condition: String,
    ) -> Result<bool, StoreError> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.registrations)
            .set_key(Some(registration_key(user, upload)))
            .update_expression(set.expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(set.names))
            .set_expression_attribute_values(Some(set.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.aws("UpdateItem", &self.registrations)(e.into())),
        }
    }

    /// The registration that signs in for `user`, if any (consistent read of the users item).
    pub async fn active_of(&self, user: &UserId) -> Result<Option<ActiveRegistration>, StoreError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.users)
            .key(users::USER_ID, s(user.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws("GetItem", &self.users)(e.into()))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(upload), Some(face_id), Some(created)) = (
            text(users::ACTIVE_UPLOAD_ID),
            text(users::ACTIVE_FACE_ID),
            text(users::ACTIVE_CREATED_AT),
        ) else {
            // A user item without an active registration (e.g. only a lock so far).
            return Ok(None);
        };
        let invalid = |attribute: &'static str, value: String| StoreError::Item {
            table: self.users.clone(),
            source: ItemError::Invalid { attribute, value },
        };
        let upload_id = UploadId::parse(&upload)
            .map_err(|_| invalid(users::ACTIVE_UPLOAD_ID, upload.clone()))?;
        let created_at = DateTime::parse_from_rfc3339(&created)
            .map_err(|_| invalid(users::ACTIVE_CREATED_AT, created.clone()))?
            .with_timezone(&Utc);
        Ok(Some(ActiveRegistration {
            upload_id,
            face_id,
            created_at,
        }))
    }

    /// One transaction: `record` INDEXED -> ACTIVE (with `duplicate_of` when the policy only
    /// flags duplicates), the users item points at it, and `previous` (what the users item
    /// pointed at when read) ACTIVE -> REPLACED. The users item's condition is that it still
    /// points at `previous`: the caller checked that `previous` is older, so a registration is
    /// only ever replaced by a newer one.
    pub async fn activate(
        &self,
        record: &RegistrationRecord,
        face_id: &str,
        duplicate_of: Option<&DuplicateMatch>,
        previous: Option<&ActiveRegistration>,
    ) -> Result<Activation, StoreError> {
        let now = Utc::now().to_rfc3339();
        let mut items = Vec::with_capacity(3);

        let mut attributes = vec![
            (reg::STATE, s(RegistrationState::Active.code())),
            (reg::UPDATED_AT, s(&now)),
        ];
        if let Some(duplicate) = duplicate_of {
            attributes.extend(duplicate_attributes(duplicate));
        }
        let mut set = SetExpression::new(attributes);
        let condition = set.condition_state_in(&[RegistrationState::Indexed.code()]);
        items.push(self.update_item(
            &self.registrations,
            registration_key(&record.user_id, &record.upload_id),
            set,
            condition,
        )?);

        let mut set = SetExpression::new(vec![
            (users::ACTIVE_UPLOAD_ID, s(record.upload_id.as_str())),
            (users::ACTIVE_FACE_ID, s(face_id)),
            (
                users::ACTIVE_CREATED_AT,
                s(sortable_time(record.created_at)),
            ),
            (users::UPDATED_AT, s(&now)),
        ]);
        set.names
            .insert("#active".into(), users::ACTIVE_UPLOAD_ID.into());
        let condition = match previous {
            None => "attribute_not_exists(#active)".to_string(),
            Some(previous) => {
                set.values
                    .insert(":previous".into(), s(previous.upload_id.as_str()));
                "#active = :previous".to_string()
            }
        };
        items.push(self.update_item(
            &self.users,
            HashMap::from([(users::USER_ID.to_string(), s(record.user_id.as_str()))]),
            set,
            condition,
        )?);

        if let Some(previous) = previous {
            let replaced = RegistrationState::Replaced {
                by_upload_id: record.upload_id.clone(),
            };
            let mut attributes = state_attributes(&replaced);
            attributes.push((reg::UPDATED_AT, s(&now)));
            let mut set = SetExpression::new(attributes);
            let condition = set.condition_state_in(&[RegistrationState::Active.code()]);
            items.push(self.update_item(
                &self.registrations,
                registration_key(&record.user_id, &previous.upload_id),
                set,
                condition,
            )?);
        }

        let result = self
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Activation::Committed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                // Cancelled by a condition (or by a concurrent transaction on the same items):
                // either way, read again.
                tracing::info!(error = %facegate_shared::report::chain(&e), "activation cancelled; re-reading");
                Ok(Activation::Conflict)
            }
            Err(e) => Err(self.aws("TransactWriteItems", &self.registrations)(
                e.into(),
            )),
        }
    }

    fn update_item(
        &self,
        table: &str,
        key: HashMap<String, AttributeValue>,
        set: SetExpression,
        condition: String,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(set.expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(set.names))
            .set_expression_attribute_values(Some(set.values))
            .build()
            .map_err(|source| StoreError::Request {
                call: "TransactWriteItems",
                source,
            })?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_shared::quality::QualityIssue;
    use facegate_shared::registration::RejectionReason;

    #[test]
    fn sortable_times_sort_as_times() {
        let a: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2026-11-21T12:00:00.5Z".parse().unwrap();
        let c: DateTime<Utc> = "2026-11-21T12:00:00.123456789Z".parse().unwrap();
        assert!(sortable_time(a) < sortable_time(c) && sortable_time(c) < sortable_time(b));
        assert_eq!(sortable_time(b), "2026-11-21T12:00:00.500000000Z");
    }

    #[test]
    fn state_attributes_carry_what_each_state_needs() {
        let rejected = RegistrationState::Rejected {
            reasons: vec![RejectionReason::Quality(QualityIssue::NoFace)],
        };
        let names: Vec<&str> = state_attributes(&rejected)
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, [reg::STATE, reg::REASONS]);
        let replaced = RegistrationState::Replaced {
            by_upload_id: UploadId::parse("u-9").unwrap(),
        };
        let attributes = state_attributes(&replaced);
        assert_eq!(attributes[0].1, s("REPLACED"));
        assert_eq!(attributes[1], (reg::REPLACED_BY, s("u-9")));
    }

    #[test]
    fn newer_is_later_then_larger_upload_id() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let record = RegistrationRecord::pending(
            UserId::parse("zoë").unwrap(),
            UploadId::parse("b").unwrap(),
            "bucket".into(),
            "key".into(),
            now,
        );
        let active = |upload: &str, seconds: i64| ActiveRegistration {
            upload_id: UploadId::parse(upload).unwrap(),
            face_id: "f".into(),
            created_at: now + chrono::Duration::seconds(seconds),
        };
        assert!(active("a", 1).is_newer_than(&record));
        assert!(!active("z", -1).is_newer_than(&record));
        assert!(active("c", 0).is_newer_than(&record));
        assert!(!active("a", 0).is_newer_than(&record));
    }
}
