//! Erasure of one user, everywhere: their faces in the collection, their registration, user,
//! failure-counter and challenge records, and their photos under `registrations/<user>/` and
//! `signin/<user>/`.
//!
//! Faces are found three ways, so none is missed: the registration records' face ids, the
//! users item's active face, and the collection's own listing (faces whose external image id
//! is one of the user's upload ids or the user id). Every step is idempotent: erasing twice,
//! or after a crash half-way, finishes the job.
//!
//! Two doors lead here: `DELETE /v1/users/<id>` on the verifier, and `facegate erase <id>`
//! ([`main`]), an operator's command that runs the same erasure directly against the stack.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use facegate_shared::config::{REGISTRATIONS_PREFIX, SIGNIN_PREFIX, Table};
use facegate_shared::ids::{IdError, UserId};
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::stack::{Stack, StackArgs, StackError};
use facegate_shared::tables::{auth_failures, challenges, registrations, users};
use serde::Serialize;

use crate::error::VerifierError;
use crate::routes::registrations::user_registrations;
use crate::service::Verifier;

/// What was removed.
#[derive(Debug, Default, Serialize)]
pub struct Erased {
    pub faces: usize,
    pub photos: usize,
    pub records: usize,
}

impl fmt::Display for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} face(s) from the collection, {} photo(s) from the bucket, {} record(s) from the tables",
            self.faces, self.photos, self.records
        )
    }
}

/// `facegate erase <user_id>`: every setting is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct EraseArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub face: FaceServiceSettings,
    /// The user to erase: their faces, registration and sign-in records, failure counters,
    /// challenges and photos. Erasing a user who is not there removes nothing and succeeds.
    pub user_id: String,
}

/// Why `facegate erase` did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    UserId(#[from] IdError),
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("erasing user {user}: {source} (erasure is idempotent: run it again)")]
    Erase {
        user: UserId,
        #[source]
        source: VerifierError,
    },
}

/// `facegate erase`: erases one user directly against the stack (no verifier needed) and
/// prints what was removed.
pub async fn main(args: EraseArgs) -> Result<Erased, EraseError> {
    let user = UserId::parse(args.user_id)?;
    let stack = Stack::connect(&args.stack).await?;
    let verifier = {
        let limiter = Arc::new(FaceServiceLimiter::for_stack(&args.face, &stack));
        Verifier::for_administration(stack, limiter)
    };
    let erased = erase_user(&verifier, &user)
        .await
        .map_err(|source| EraseError::Erase {
            user: user.clone(),
            source,
        })?;
    println!("erased user {user}: {erased}");
    Ok(erased)
}

pub async fn erase_user(verifier: &Verifier, user: &UserId) -> Result<Erased, VerifierError> {
    let mut erased = Erased::default();
    let records = user_registrations(verifier, user).await?;
    let users_item = verifier
        .dynamodb()
        .get_item()
        .table_name(verifier.table(Table::Users))
        .key(users::USER_ID, s(user.as_str()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| VerifierError::dependency("GetItem users", e))?
        .item;

    // Faces first: once the records are gone, nothing else would say which faces were theirs.
    let mut face_ids: BTreeSet<String> = records.iter().filter_map(|r| r.face_id.clone()).collect();
    if let Some(face) = users_item
        .as_ref()
        .and_then(|item| item.get(users::ACTIVE_FACE_ID))
        .and_then(|v| v.as_s().ok())
    {
        face_ids.insert(face.clone());
    }
    let mut external_ids: BTreeSet<String> =
        records.iter().map(|r| r.upload_id.to_string()).collect();
    external_ids.insert(user.to_string());
    face_ids.extend(listed_faces(verifier, &external_ids).await?);
    erased.faces = delete_faces(verifier, face_ids.into_iter().collect()).await?;

    for prefix in [REGISTRATIONS_PREFIX, SIGNIN_PREFIX] {
        erased.photos += delete_photos(verifier, &format!("{prefix}{user}/")).await?;
    }

    for record in &records {
        delete_item(
            verifier,
            Table::Registrations,
            vec![
                (registrations::USER_ID, s(user.as_str())),
                (registrations::UPLOAD_ID, s(record.upload_id.as_str())),
            ],
        )
        .await?;
        erased.records += 1;
    }
    if users_item.is_some() {
        delete_item(
            verifier,
            Table::Users,
            vec![(users::USER_ID, s(user.as_str()))],
        )
        .await?;
        erased.records += 1;
    }
    erased.records += delete_failure_counters(verifier, user).await?;
    erased.records += delete_challenges(verifier, user).await?;
    tracing::info!(user = %user, faces = erased.faces, photos = erased.photos, records = erased.records, "user erased");
    Ok(erased)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// Faces in the collection whose external image id is one of `external_ids`.
async fn listed_faces(
    verifier: &Verifier,
    external_ids: &BTreeSet<String>,
) -> Result<Vec<String>, VerifierError> {
    let mut found = Vec::new();
    let mut token = None;
    // Bounded: a collection of 4 million faces is 1000 pages; stop well past any real one.
    for _ in 0..10_000 {
        verifier.limiter().acquire().await;
        let page = verifier
            .rekognition()
            .list_faces()
            .collection_id(verifier.collection())
            .max_results(4096)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| VerifierError::dependency("ListFaces", e))?;
        found.extend(page.faces().iter().filter_map(|face| {
            let external = face.external_image_id()?;
            external_ids
                .contains(external)
                .then(|| face.face_id().map(str::to_string))?
        }));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

async fn delete_faces(verifier: &Verifier, face_ids: Vec<String>) -> Result<usize, VerifierError> {
    let mut deleted = 0;
    for chunk in face_ids.chunks(4096) {
        verifier.limiter().acquire().await;
        let out = verifier
            .rekognition()
            .delete_faces()
            .collection_id(verifier.collection())
            .set_face_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| VerifierError::dependency("DeleteFaces", e))?;
        deleted += out.deleted_faces().len();
    }
    Ok(deleted)
}

async fn delete_photos(verifier: &Verifier, prefix: &str) -> Result<usize, VerifierError> {
    let mut keys = Vec::new();
    let mut pages = verifier
        .s3()
        .list_objects_v2()
        .bucket(verifier.bucket())
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| VerifierError::dependency("ListObjectsV2", e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    for key in &keys {
        verifier
            .s3()
            .delete_object()
            .bucket(verifier.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| VerifierError::dependency("DeleteObject", e))?;
    }
    Ok(keys.len())
}

async fn delete_item(
    verifier: &Verifier,
    table: Table,
    key: Vec<(&'static str, AttributeValue)>,
) -> Result<(), VerifierError> {
    let mut request = verifier
        .dynamodb()
        .delete_item()
        .table_name(verifier.table(table));
    for (name, value) in key {
        request = request.key(name, value);
    }
    request
        .send()
        .await
        .map_err(|e| VerifierError::dependency("DeleteItem", e))?;
    Ok(())
}

/// The user's failure-counter buckets (`user#<id>`); source counters are not personal to
/// one user and stay.
async fn delete_failure_counters(
    verifier: &Verifier,
    user: &UserId,
) -> Result<usize, VerifierError> {
    let subject = format!("user#{user}");
    let items = verifier
        .dynamodb()
        .query()
        .table_name(verifier.table(Table::AuthFailures))
        .key_condition_expression("#subject = :subject")
        .expression_attribute_names("#subject", auth_failures::SUBJECT)
        .expression_attribute_values(":subject", s(&subject))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| VerifierError::dependency("Query auth-failures", e))?;
    for item in &items {
        if let Some(start) = item.get(auth_failures::WINDOW_START) {
            delete_item(
                verifier,
                Table::AuthFailures,
                vec![
                    (auth_failures::SUBJECT, s(&subject)),
                    (auth_failures::WINDOW_START, start.clone()),
                ],
            )
            .await?;
        }
    }
    Ok(items.len())
}

/// The user's challenges. The table is keyed by challenge id (Verify's lookup), so this is a
/// filtered scan: acceptable for a rare administrative call on a table TTL keeps small (a
/// challenge lives minutes).
async fn delete_challenges(verifier: &Verifier, user: &UserId) -> Result<usize, VerifierError> {
    let items = verifier
        .dynamodb()
        .scan()
        .table_name(verifier.table(Table::Challenges))
        .filter_expression("#user = :user")
        .expression_attribute_names("#user", challenges::USER_ID)
        .expression_attribute_values(":user", s(user.as_str()))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| VerifierError::dependency("Scan challenges", e))?;
    for item in &items {
        if let Some(id) = item.get(challenges::CHALLENGE_ID) {
            delete_item(
                verifier,
                Table::Challenges,
                vec![(challenges::CHALLENGE_ID, id.clone())],
            )
            .await?;
        }
    }
    Ok(items.len())
}
