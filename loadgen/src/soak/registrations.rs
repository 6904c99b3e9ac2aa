//! The registration flow of the soak: `clients` concurrent uploaders put one photo per user
//! straight into S3 (as an app with its own credentials would), then the registrations table
//! is watched until every registration is final.
//!
//! User `i` registers photo `i mod P` of the photos folder, as variant `i / P` (bench
//! pipeline's variants: every upload a different file), so a thousand users are a thousand
//! registrations of a dozen people.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::pipeline::{Photo, variant};
use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::registration::RegistrationRecord;
use facegate_shared::stack::Stack;

use super::SoakError;

/// One upload the soak made.
#[derive(Clone, Debug)]
pub struct Upload {
    pub user: UserId,
    pub upload: UploadId,
    /// Index of the photo in the photos folder.
    pub photo: usize,
    /// When its PutObject returned.
    pub put_at: DateTime<Utc>,
}

/// The user id of registration `i`.
pub fn user_of(i: usize) -> Result<UserId, SoakError> {
    UserId::parse(format!("soak-{i:06}")).map_err(|e| SoakError::Run(e.to_string()))
}

/// Uploads `count` registrations with `clients` concurrent uploaders; `uploaded` counts the
/// ones done so far (the fleet's kill is timed on it).
pub async fn upload(
    stack: &Stack,
    photos: Arc<Vec<Photo>>,
    count: usize,
    clients: usize,
    uploaded: Arc<AtomicUsize>,
) -> Result<Vec<Upload>, SoakError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (stack, photos, next, uploaded) = (
            stack.clone(),
            photos.clone(),
            next.clone(),
            uploaded.clone(),
        );
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, SoakError>(done);
                }
                done.push(upload_one(&stack, &photos, i).await?);
                uploaded.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut uploads = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        uploads.extend(joined.map_err(|e| SoakError::Run(e.to_string()))??);
    }
    Ok(uploads)
}

async fn upload_one(
    stack: &Stack,
    photos: &Arc<Vec<Photo>>,
    i: usize,
) -> Result<Upload, SoakError> {
    let user = user_of(i)?;
    let upload = UploadId::random();
    let photo = i % photos.len();
    let bytes = tokio::task::spawn_blocking({
        let photos = photos.clone();
        move || variant(&photos[photo].image, i / photos.len())
    })
    .await
    .map_err(|e| SoakError::Run(e.to_string()))?;
    stack
        .clients
        .s3
        .put_object()
        .bucket(stack.names.bucket())
        .key(format!("registrations/{user}/{upload}.jpg"))
        .content_type("image/jpeg")
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| SoakError::aws("PutObject registration", e))?;
    Ok(Upload {
        user,
        upload,
        photo,
        put_at: Utc::now(),
    })
}

/// Every registration record of the stack, by (user, upload).
pub async fn records(
    stack: &Stack,
) -> Result<HashMap<(UserId, UploadId), Vec<RegistrationRecord>>, SoakError> {
    let items = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.table(Table::Registrations))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| SoakError::aws("Scan registrations", e))?;
    let mut records: HashMap<_, Vec<RegistrationRecord>> = HashMap::new();
    for item in &items {
        let record = RegistrationRecord::from_item(item)
            .map_err(|e| SoakError::Run(format!("a registration item that does not parse: {e}")))?;
        records
            .entry((record.user_id.clone(), record.upload_id.clone()))
            .or_default()
            .push(record);
    }
    Ok(records)
}

/// Waits until every upload has a final record, logging progress; gives up after `within`
/// (the audit then reports what is unfinished).
pub async fn settle(
    stack: &Stack,
    uploads: &[Upload],
    within: Duration,
) -> Result<HashMap<(UserId, UploadId), Vec<RegistrationRecord>>, SoakError> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let records = records(stack).await?;
        let settled = uploads
            .iter()
            .filter(|u| {
                records
                    .get(&(u.user.clone(), u.upload.clone()))
                    .is_some_and(|r| r.iter().all(|r| r.state.is_final()))
            })
            .count();
        if settled == uploads.len() {
            return Ok(records);
        }
        if started.elapsed() > within {
            tracing::warn!(
                settled,
                uploads = uploads.len(),
                "registrations not all final in time"
            );
            return Ok(records);
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                settled,
                uploads = uploads.len(),
                "registrations final so far"
            );
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
