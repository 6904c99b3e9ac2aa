//! The indexer (`facegate indexer`): registration photos from the `uploads` queue become faces
//! in the collection, exactly once.
//!
//! For each S3 event record (`s3:TestEvent` is acknowledged and skipped):
//! 1. The key must be `registrations/<user_id>/<upload_id>.<ext>`; anything else is refused
//!    (REJECTED `invalid-key` when a user can be read from it, otherwise only logged).
//! 2. The PENDING record is written, unless the upload has one already: an INDEXED record means
//!    an earlier attempt got that far (announce it again: dedup-search is idempotent), a final
//!    one means there is nothing left to do.
//! 3. The object: gone (deleted since) is FAILED; larger than the limit is REJECTED
//!    `too-large`; not a JPEG or PNG (content type or magic bytes) is REJECTED `not-an-image`.
//! 4. The quality gate ([`gate`]) through DetectFaces; any issue is REJECTED with every issue.
//! 5. IndexFaces, the record PENDING -> INDEXED with the face id, `FaceIndexed` published.
//!
//! IndexFaces has no idempotency token, so a redelivery (or a second event for the same key)
//! first asks SearchFacesByImage for faces already indexed under this upload id, and adopts one
//! instead of indexing again: an earlier attempt may have indexed the face and died before
//! recording it. The record write is conditional (PENDING, no face yet): when another attempt
//! recorded a face first, that face wins and this attempt deletes every other face of the
//! upload it knows of. On the queue's last delivery a transient failure is final: the
//! registration is marked FAILED, its faces are deleted (best effort), and the message goes on
//! to the dead-letter queue. A process killed during that last delivery cannot do this; the
//! dead-letter sweep (see [`crate::role`]) does it instead.
//!
//! Refusals (REJECTED, FAILED) are permanent errors for the worker runtime: recorded where the
//! user sees them, the message deleted, never retried.

pub mod gate;
pub mod photo;
mod settings;

pub use settings::{IndexerSettings, REKOGNITION_MAX_IMAGE_BYTES};

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use facegate_shared::config::{Queue, REGISTRATIONS_PREFIX, Topic};
use facegate_shared::events::{self, FaceIndexed, ObjectEvent, S3Notification};
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::objects::{ObjectKeyError, RegistrationUpload};
use facegate_shared::ops::Health;
use facegate_shared::rate_limit::FaceServiceLimiter;
use facegate_shared::registration::{RegistrationRecord, RegistrationState, RejectionReason};
use facegate_shared::report;
use facegate_shared::stack::Stack;
use facegate_shared::worker::{BoxError, Handler, HandlerError, Message, WorkerSettings};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::faces::{FaceCollection, FaceError};
use crate::role::{self, RoleArgs, RoleError, SettlesDeadLetters};
use crate::store::{RegistrationStore, StoreError};

/// A face of the same image scores 100; other photos of the same person score 99.9+ too (the
/// engine's calibration), which is why adoption also checks the external image id.
const ADOPT_THRESHOLD: f32 = 99.0;
/// Room for every face of one person (a user's other registrations match as well).
const ADOPT_MAX_FACES: i32 = 100;

/// `facegate indexer`.
#[derive(clap::Args, Clone, Debug)]
pub struct IndexerArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub indexer: IndexerSettings,
}

/// The indexer inside a process that runs other things too (`facegate dev`, tests): works the
/// `uploads` queue until `shutdown`, then drains.
pub async fn run_indexer(
    stack: Stack,
    limiter: Arc<FaceServiceLimiter>,
    worker: WorkerSettings,
    settings: IndexerSettings,
    health: Health,
    shutdown: CancellationToken,
) {
    let sweep_every = Duration::from_secs(settings.dead_letter_sweep_secs);
    let make = || Indexer::new(stack.clone(), limiter.clone(), settings.clone());
    role::run_worker_sweeping_dead_letters(
        "indexer",
        &stack,
        Queue::Uploads,
        make,
        worker,
        sweep_every,
        health,
        shutdown,
    )
    .await
}

/// `facegate indexer`: the standalone role, until SIGTERM or SIGINT.
pub async fn indexer_main(args: IndexerArgs) -> Result<(), RoleError> {
    let settings = args.indexer;
    role::standalone(
        "indexer",
        args.role,
        move |stack, limiter, worker, health, shutdown| {
            run_indexer(stack, limiter, worker, settings, health, shutdown)
        },
    )
    .await
}

/// Why one upload did not end indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A final answer, recorded on the registration (or, for a key naming no user, logged).
    #[error("{key}: {detail}")]
    Refused { key: String, detail: String },
    /// A step that may pass on another attempt.
    #[error("{key}: {step} failed")]
    Step {
        key: String,
        step: &'static str,
        #[source]
        source: BoxError,
    },
}

/// The handler of the `uploads` queue.
pub struct Indexer {
    stack: Stack,
    store: RegistrationStore,
    faces: FaceCollection,
    settings: IndexerSettings,
}

/// The upload being worked on, its photo once read, and every face this attempt knows was
/// indexed for it.
struct Attempt<'a> {
    record: &'a RegistrationRecord,
    photo: Option<Vec<u8>>,
    faces: Vec<String>,
}

impl Attempt<'_> {
    fn step(&self, step: &'static str) -> impl FnOnce(BoxError) -> IndexError {
        let key = self.record.key.clone();
        move |source| IndexError::Step { key, step, source }
    }

    fn store(&self, step: &'static str) -> impl FnOnce(StoreError) -> IndexError {
        let key = self.record.key.clone();
        move |e| IndexError::Step {
            key,
            step,
            source: Box::new(e),
        }
    }
}

impl Indexer {
    pub fn new(stack: Stack, limiter: Arc<FaceServiceLimiter>, settings: IndexerSettings) -> Self {
        Self {
            store: RegistrationStore::new(&stack),
            faces: FaceCollection::new(
                stack.clients.rekognition.clone(),
                stack.names.collection(),
                limiter,
            ),
            stack,
            settings,
        }
    }

    /// One object event, start to end.
    async fn index_object(
        &self,
        object: &ObjectEvent,
        message: &Message,
    ) -> Result<(), IndexError> {
        let upload = match RegistrationUpload::parse_key(&object.key) {
            Ok(upload) => upload,
            Err(error) => return Err(self.refuse_key(object, error).await),
        };
        let pending = RegistrationRecord::pending(
            upload.user_id,
            upload.upload_id,
            object.bucket.clone(),
            object.key.clone(),
            object.event_time,
        );
        let mut attempt = Attempt {
            record: &pending,
            photo: None,
            faces: Vec::new(),
        };
        let result = self.process(&mut attempt, message).await;
        if let Err(error @ IndexError::Step { .. }) = &result
            && role::is_last_attempt(message, &self.stack)
        {
            let detail = format!(
                "gave up after {} deliveries: {}",
                message.receive_count,
                report::chain(error)
            );
            self.fail(&pending, detail, &attempt.faces, attempt.photo.as_deref())
                .await;
        }
        result
    }

    async fn process(
        &self,
        attempt: &mut Attempt<'_>,
        message: &Message,
    ) -> Result<(), IndexError> {
        let record = attempt.record;
        let created = self
            .store
            .create(record)
            .await
            .map_err(attempt.store("writing the PENDING record"))?;
        if !created {
            let stored = self
                .store
                .get(&record.user_id, &record.upload_id)
                .await
                .map_err(attempt.store("reading the registration"))?;
            match stored.map(|s| s.record) {
                Some(existing) if existing.state == RegistrationState::Indexed => {
                    return self.announce(&existing, attempt).await;
                }
                Some(existing) if existing.state.is_final() => {
                    tracing::info!(key = %record.key, state = existing.state.code(), "already done");
                    return Ok(());
                }
                _ => {}
            }
        }
        // Anything but a first delivery of a new upload may find a face indexed before.
        let redelivered = message.receive_count > 1 || !created;

        let photo = self.fetch(attempt).await?;
        attempt.photo = Some(photo.clone());
        let info = match photo::inspect(&photo) {
            Ok(info) => info,
            Err(e) => {
                return self
                    .reject(
                        attempt,
                        vec![RejectionReason::NotAnImage],
                        &report::chain(&e),
                    )
                    .await;
            }
        };
        let detected = match self.faces.detect(&photo).await {
            Ok(faces) => faces,
            Err(e) => return self.face_error(attempt, e).await,
        };
        let issues = gate::check(&self.settings, &detected, &info);
        if !issues.is_empty() {
            let reasons = issues.into_iter().map(RejectionReason::Quality).collect();
            return self.reject(attempt, reasons, "quality gate").await;
        }

        if redelivered {
            let found = match self
                .faces
                .search_by_image(&photo, ADOPT_THRESHOLD, ADOPT_MAX_FACES)
                .await
            {
                Ok(found) => found,
                Err(e) => return self.face_error(attempt, e).await,
            };
            attempt.faces.extend(
                found
                    .into_iter()
                    .filter(|m| m.external_image_id.as_deref() == Some(record.upload_id.as_str()))
                    .map(|m| m.face_id),
            );
            if let Some(face) = attempt.faces.first() {
                tracing::info!(key = %record.key, face_id = %face, "adopting a face indexed by an earlier attempt");
            }
        }
        let face_id = match attempt.faces.first() {
            Some(face) => face.clone(),
            None => {
                let indexed = match self.faces.index(&photo, record.upload_id.as_str()).await {
                    Ok(indexed) => indexed,
                    Err(e) => return self.face_error(attempt, e).await,
                };
                let face = indexed.ok_or_else(|| {
                    attempt.step("IndexFaces")(
                        "it indexed no face although DetectFaces found one".into(),
                    )
                })?;
                attempt.faces.push(face.clone());
                face
            }
        };

        let recorded = self.record_face(attempt, &face_id).await?;
        let Some(recorded) = recorded else {
            return Ok(());
        };
        self.announce(&recorded, attempt).await
    }

    /// Records `face_id` on the PENDING registration, or finds out who won. Every other face of
    /// the upload this attempt knows of is deleted. The registration as INDEXED, or `None` when
    /// it was finished meanwhile (nothing left to announce).
    async fn record_face(
        &self,
        attempt: &Attempt<'_>,
        face_id: &str,
    ) -> Result<Option<RegistrationRecord>, IndexError> {
        let record = attempt.record;
        let won = self
            .store
            .record_indexed(&record.user_id, &record.upload_id, face_id)
            .await
            .map_err(attempt.store("recording the face"))?;
        // Whoever won, the record now says which face stays (a retried write of ours that
        // had succeeded reads back as our own face).
        let stored = self
            .store
            .get(&record.user_id, &record.upload_id)
            .await
            .map_err(attempt.store("reading the registration"))?
            .map(|s| s.record);
        let keep = match &stored {
            Some(r) if r.state == RegistrationState::Indexed => r.face_id.clone(),
            _ => None,
        };
        if !won {
            tracing::info!(key = %record.key, recorded = ?keep, "another attempt recorded the registration first");
        }
        let extra: Vec<String> = attempt
            .faces
            .iter()
            .filter(|f| Some(*f) != keep.as_ref())
            .cloned()
            .collect();
        if !extra.is_empty() {
            // A failure here leaves faces no registration points at; say so loudly.
            if let Err(e) = self.faces.delete(&extra).await {
                tracing::error!(key = %record.key, faces = ?extra, error = %report::chain(&e), "could not delete surplus faces of an upload");
            }
        }
        Ok(stored.filter(|r| r.state == RegistrationState::Indexed))
    }

    /// Publishes `FaceIndexed` for an INDEXED registration.
    async fn announce(
        &self,
        record: &RegistrationRecord,
        attempt: &Attempt<'_>,
    ) -> Result<(), IndexError> {
        let Some(face_id) = record.face_id.clone() else {
            return Err(attempt.step("announcing the face")(
                "INDEXED record without a face id".into(),
            ));
        };
        let event = FaceIndexed {
            user_id: record.user_id.clone(),
            upload_id: record.upload_id.clone(),
            face_id,
            collection_id: self.faces.id().to_string(),
            bucket: record.bucket.clone(),
            key: record.key.clone(),
            indexed_at: Utc::now(),
        };
        events::publish(
            &self.stack.clients.sns,
            self.stack.topic_arn(Topic::Pipeline),
            &event,
        )
        .await
        .map_err(|e| attempt.step("publishing FaceIndexed")(Box::new(e)))?;
        tracing::info!(key = %record.key, face_id = %event.face_id, "indexed");
        Ok(())
    }

    /// The photo's bytes, after the object's size and type were checked.
    async fn fetch(&self, attempt: &Attempt<'_>) -> Result<Vec<u8>, IndexError> {
        let record = attempt.record;
        let s3 = &self.stack.clients.s3;
        let head = match s3
            .head_object()
            .bucket(&record.bucket)
            .key(&record.key)
            .send()
            .await
        {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return self.object_missing(attempt).await;
            }
            Err(e) => return Err(attempt.step("HeadObject")(Box::new(e))),
        };
        let size = head.content_length().unwrap_or_default().max(0) as u64;
        if size > self.settings.max_bytes {
            let detail = format!("{size} bytes, more than {}", self.settings.max_bytes);
            return self
                .reject(attempt, vec![RejectionReason::TooLarge], &detail)
                .await;
        }
        if !photo::content_type_allowed(head.content_type()) {
            let detail = format!("content type {:?}", head.content_type().unwrap_or_default());
            return self
                .reject(attempt, vec![RejectionReason::NotAnImage], &detail)
                .await;
        }
        let object = match s3
            .get_object()
            .bucket(&record.bucket)
            .key(&record.key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return self.object_missing(attempt).await;
            }
            Err(e) => return Err(attempt.step("GetObject")(Box::new(e))),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| attempt.step("reading the object")(Box::new(e)))?
            .to_vec();
        // The object may have been overwritten between the two calls.
        if bytes.len() as u64 > self.settings.max_bytes {
            let detail = format!(
                "{} bytes, more than {}",
                bytes.len(),
                self.settings.max_bytes
            );
            return self
                .reject(attempt, vec![RejectionReason::TooLarge], &detail)
                .await;
        }
        Ok(bytes)
    }

    /// HeadObject found nothing. A missing object (deleted since it was uploaded; S3 reads are
    /// strongly consistent) can never succeed: FAILED. A missing bucket is the stack's fault,
    /// not the photo's: retried, and after the last delivery in the dead-letter queue, where it
    /// can be redriven once the bucket is back.
    async fn object_missing<T>(&self, attempt: &Attempt<'_>) -> Result<T, IndexError> {
        let record = attempt.record;
        match self
            .stack
            .clients
            .s3
            .head_bucket()
            .bucket(&record.bucket)
            .send()
            .await
        {
            Ok(_) => {
                let state = RegistrationState::Failed {
                    detail: "the photo was deleted before it was processed".into(),
                };
                self.finish(attempt, &state).await?;
                Err(IndexError::Refused {
                    key: record.key.clone(),
                    detail: "the object no longer exists".into(),
                })
            }
            Err(e) => Err(attempt.step("HeadBucket (the object was not found)")(
                Box::new(e),
            )),
        }
    }

    async fn face_error<T>(
        &self,
        attempt: &Attempt<'_>,
        error: FaceError,
    ) -> Result<T, IndexError> {
        match error {
            FaceError::Photo { reason, .. } => {
                let detail = report::chain(&error);
                self.reject(attempt, vec![reason], &detail).await
            }
            FaceError::Service { call, .. } => Err(attempt.step(call)(Box::new(error))),
        }
    }

    /// Records a final REJECTED with `reasons`; the message is done.
    async fn reject<T>(
        &self,
        attempt: &Attempt<'_>,
        reasons: Vec<RejectionReason>,
        detail: &str,
    ) -> Result<T, IndexError> {
        let codes = format!("{reasons:?}");
        self.finish(attempt, &RegistrationState::Rejected { reasons })
            .await?;
        Err(IndexError::Refused {
            key: attempt.record.key.clone(),
            detail: format!("rejected {codes}: {detail}"),
        })
    }

    async fn finish(
        &self,
        attempt: &Attempt<'_>,
        state: &RegistrationState,
    ) -> Result<(), IndexError> {
        let record = attempt.record;
        let moved = self
            .store
            .finish(&record.user_id, &record.upload_id, state, None)
            .await
            .map_err(attempt.store("recording the outcome"))?;
        if !moved {
            tracing::info!(key = %record.key, state = state.code(), "already finished by another attempt");
        }
        Ok(())
    }

    /// The registration's message will never succeed (its last delivery failed, or it is in
    /// the dead-letter queue): FAILED unless already final. Then, if it is FAILED (now or by an
    /// earlier attempt that died, or lost the face service, before cleaning up), every face of
    /// the upload is deleted, best effort: the recorded one, those this attempt knows of, and,
    /// when the photo is at hand, any an earlier attempt indexed without recording. The sweep
    /// offers the message again every round until that is done.
    async fn fail(
        &self,
        record: &RegistrationRecord,
        detail: String,
        known: &[String],
        photo: Option<&[u8]>,
    ) {
        let failed = RegistrationState::Failed { detail };
        // Read first: an INDEXED record holds a face that must go too.
        let stored_face = match self.store.get(&record.user_id, &record.upload_id).await {
            Ok(stored) => stored.and_then(|s| s.record.face_id),
            Err(_) => None,
        };
        match self
            .store
            .finish(&record.user_id, &record.upload_id, &failed, None)
            .await
        {
            Ok(true) => tracing::error!(key = %record.key, "registration FAILED"),
            // Final already: only a FAILED registration's faces are this cleanup's to delete.
            Ok(false) => match self.store.get(&record.user_id, &record.upload_id).await {
                Ok(Some(stored))
                    if matches!(stored.record.state, RegistrationState::Failed { .. }) => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(key = %record.key, error = %report::chain(&e), "could not read the failed registration");
                    return;
                }
            },
            Err(e) => {
                tracing::error!(key = %record.key, error = %report::chain(&e), "could not mark the registration FAILED");
                return;
            }
        }
        let mut faces = known.to_vec();
        faces.extend(stored_face);
        if let Some(photo) = photo
            && let Ok(found) = self
                .faces
                .search_by_image(photo, ADOPT_THRESHOLD, ADOPT_MAX_FACES)
                .await
        {
            faces.extend(
                found
                    .into_iter()
                    .filter(|m| m.external_image_id.as_deref() == Some(record.upload_id.as_str()))
                    .map(|m| m.face_id),
            );
        }
        faces.sort();
        faces.dedup();
        if !faces.is_empty()
            && let Err(e) = self.faces.delete(&faces).await
        {
            tracing::error!(key = %record.key, ?faces, error = %report::chain(&e), "FAILED, but its faces could not be deleted (the sweep tries again)");
        }
    }

    /// The photo as stored, for cleaning up after a failure; `None` if it cannot be read.
    async fn read_photo(&self, record: &RegistrationRecord) -> Option<Vec<u8>> {
        let object = self
            .stack
            .clients
            .s3
            .get_object()
            .bucket(&record.bucket)
            .key(&record.key)
            .send()
            .await
            .ok()?;
        let bytes = object.body.collect().await.ok()?.to_vec();
        (bytes.len() as u64 <= self.settings.max_bytes).then_some(bytes)
    }

    /// A key that is not `registrations/<user_id>/<upload_id>.<ext>`: REJECTED `invalid-key`
    /// if the key names a user who can see it, otherwise only logged.
    async fn refuse_key(&self, object: &ObjectEvent, error: ObjectKeyError) -> IndexError {
        let refused = IndexError::Refused {
            key: object.key.clone(),
            detail: report::chain(&error),
        };
        let Some((user, upload)) = owner_of_invalid_key(&object.key) else {
            tracing::warn!(key = %object.key, bucket = %object.bucket, "key names no user: nothing to record");
            return refused;
        };
        let record = RegistrationRecord {
            state: RegistrationState::Rejected {
                reasons: vec![RejectionReason::InvalidKey],
            },
            ..RegistrationRecord::pending(
                user,
                upload,
                object.bucket.clone(),
                object.key.clone(),
                object.event_time,
            )
        };
        match self.store.create(&record).await {
            Ok(_) => refused,
            // Retried: the refusal must be where the user can see it.
            Err(e) => IndexError::Step {
                key: object.key.clone(),
                step: "recording the invalid key",
                source: Box::new(e),
            },
        }
    }
}

/// Who an invalid registration key belongs to, if anyone: the user from its first segment, and
/// the upload id from the file name or, when that is not a valid id, a stable one derived from
/// the key (so a redelivery finds the same record).
fn owner_of_invalid_key(key: &str) -> Option<(UserId, UploadId)> {
    let rest = key.strip_prefix(REGISTRATIONS_PREFIX)?;
    let (user, file) = rest.split_once('/')?;
    let user = UserId::parse(user).ok()?;
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let upload = UploadId::parse(stem).ok().or_else(|| {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        UploadId::parse(format!("invalid-key-{}", &digest[..16])).ok()
    })?;
    Some((user, upload))
}

impl SettlesDeadLetters for Indexer {
    async fn settle_dead_letter(&self, body: &str) {
        let objects = match S3Notification::parse(body).and_then(|n| n.objects()) {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(error = %report::chain(&e), "dead letter is not an S3 event: left alone");
                return;
            }
        };
        for object in objects.iter().filter(|o| o.is_object_created()) {
            // Invalid keys are refused, not retried: they do not end up here.
            let Ok(upload) = RegistrationUpload::parse_key(&object.key) else {
                continue;
            };
            let detail = "its S3 event reached the dead-letter queue".to_string();
            let record = RegistrationRecord::pending(
                upload.user_id,
                upload.upload_id,
                object.bucket.clone(),
                object.key.clone(),
                object.event_time,
            );
            // Killed before the first write: there is no record, and so no face either.
            let failed = RegistrationRecord {
                state: RegistrationState::Failed {
                    detail: detail.clone(),
                },
                ..record.clone()
            };
            match self.store.create(&failed).await {
                Ok(true) => tracing::error!(key = %record.key, "registration FAILED"),
                Ok(false) => {
                    let photo = self.read_photo(&record).await;
                    self.fail(&record, detail, &[], photo.as_deref()).await;
                }
                Err(e) => {
                    tracing::warn!(key = %record.key, error = %report::chain(&e), "dead-letter sweep: could not record FAILED")
                }
            }
        }
    }
}

impl Handler for Indexer {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let notification = S3Notification::parse(&message.body).map_err(HandlerError::permanent)?;
        if let S3Notification::Test(test) = &notification {
            tracing::info!(bucket = %test.bucket, "s3:TestEvent: nothing to do");
            return Ok(());
        }
        let objects = notification.objects().map_err(HandlerError::permanent)?;
        // Each record on its own; a transient failure of any retries the message (the others
        // are idempotent), otherwise a refusal deletes it.
        let mut transient = None;
        let mut refused = None;
        for object in &objects {
            if !object.is_object_created() {
                tracing::info!(key = %object.key, event = %object.event_name, "not an upload: skipped");
                continue;
            }
            match self.index_object(object, message).await {
                Ok(()) => {}
                Err(e @ IndexError::Refused { .. }) => refused = Some(e),
                Err(e @ IndexError::Step { .. }) => transient = Some(e),
            }
        }
        match (transient, refused) {
            (Some(e), _) => Err(HandlerError::transient(e)),
            (None, Some(e)) => Err(HandlerError::permanent(e)),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_keys_are_recorded_for_their_user_when_there_is_one() {
        let (user, upload) = owner_of_invalid_key("registrations/zoë user/u-1.gif").unwrap();
        assert_eq!((user.as_str(), upload.as_str()), ("zoë user", "u-1"));
        let (user, upload) = owner_of_invalid_key("registrations/alice/a/b.jpg").unwrap();
        assert_eq!(user.as_str(), "alice");
        assert!(upload.as_str().starts_with("invalid-key-"));
        // Stable: the same key gives the same record.
        assert_eq!(
            owner_of_invalid_key("registrations/alice/a/b.jpg")
                .unwrap()
                .1,
            upload
        );
        assert_eq!(owner_of_invalid_key("registrations/noslash.jpg"), None);
        assert_eq!(owner_of_invalid_key("registrations/../x.jpg"), None);
        assert_eq!(owner_of_invalid_key("elsewhere/alice/u.jpg"), None);
    }
}
