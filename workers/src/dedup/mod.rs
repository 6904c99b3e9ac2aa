//! Dedup-search (`facegate dedup`): a newly indexed face becomes ACTIVE, unless it is another
//! user's face.
//!
//! For each `FaceIndexed` from the `dedup` queue (an SNS envelope), while the registration is
//! INDEXED:
//! 1. SearchFaces for the new face at the configured threshold. A match counts as a duplicate
//!    when its face belongs to another user's registration that is ACTIVE, or INDEXED with a
//!    claim older than this user's (so two simultaneous registrations of one face do not both
//!    lose). A user's claim dates from their earliest registration still holding a matching
//!    face, so re-registering never loses one's face to a copy uploaded in between. The user's
//!    own faces and faces of finished registrations are ignored.
//! 2. A duplicate under policy `reject`: REJECTED `duplicate` with `duplicate_of`. Under policy
//!    `flag`, and for every registration that is not a duplicate: ACTIVE, in one transaction
//!    with the users item (which must still point at what was read) and the user's previous
//!    ACTIVE registration, which becomes REPLACED. When the users item already points at a
//!    *newer* registration, this one becomes REPLACED directly.
//! 3. Once the registration is final, whatever a crash may have interrupted is finished: the
//!    duplicate's `SecurityAlert` is published unless the record says it was, and the faces of
//!    the user's REPLACED, REJECTED and FAILED registrations are deleted.
//!
//! Step 3 runs on every delivery of a message whose registration is already final, so a
//! redelivery after a crash between two steps completes the work; deleting an absent face is
//! harmless. The alert is published at least once: a crash between publishing and recording
//! `alert_published` publishes it again, with the same `alert_id` for subscribers to drop.

mod decision;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use facegate_shared::config::{Queue, Topic};
use facegate_shared::events::{
    self, AlertKind, AlertSubject, FaceIndexed, Notification, SecurityAlert, Severity,
};
use facegate_shared::ops::Health;
use facegate_shared::rate_limit::FaceServiceLimiter;
use facegate_shared::registration::{
    DuplicateMatch, RegistrationRecord, RegistrationState, RejectionReason,
};
use facegate_shared::report;
use facegate_shared::stack::Stack;
use facegate_shared::worker::{BoxError, Handler, HandlerError, Message, WorkerSettings};
use tokio_util::sync::CancellationToken;

use decision::claim_of;
pub use decision::{DuplicatePolicy, counts_as_duplicate};

use crate::faces::FaceCollection;
use crate::role::{self, RoleArgs, RoleError, SettlesDeadLetters};
use crate::store::{Activation, RegistrationStore, StoredRegistration};

/// Rekognition's largest `MaxFaces` for SearchFaces: every face above the threshold.
const SEARCH_MAX_FACES: i32 = 4096;
/// Decisions re-read and retried when a conditional write lost a race, before giving the
/// message back to SQS.
const MAX_ROUNDS: usize = 5;

/// Dedup-search's own settings.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DedupSettings {
    /// Similarity (0-100) at or above which another user's face is the same person.
    #[arg(id = "dedup-threshold", long = "dedup-threshold", env = "FACEGATE_DEDUP_THRESHOLD", default_value_t = 95.0,
          value_parser = parse_threshold)]
    pub threshold: f32,
    /// What a duplicate registration becomes: `reject` (REJECTED, face deleted) or `flag`
    /// (ACTIVE with `duplicate_of`). Both raise a security alert.
    #[arg(id = "dedup-policy", long = "dedup-policy", env = "FACEGATE_DEDUP_POLICY", value_enum, default_value_t = DuplicatePolicy::Reject)]
    pub policy: DuplicatePolicy,
    /// Seconds between two sweeps of the `dedup` dead-letter queue, which mark registrations
    /// whose message was dead-lettered FAILED (see `role`).
    #[arg(id = "dedup-dead-letter-sweep-secs", long = "dedup-dead-letter-sweep-secs", env = "FACEGATE_DEDUP_DEAD_LETTER_SWEEP_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=43_200))]
    pub dead_letter_sweep_secs: u64,
}

impl Default for DedupSettings {
    fn default() -> Self {
        Self {
            threshold: 95.0,
            policy: DuplicatePolicy::Reject,
            dead_letter_sweep_secs: 60,
        }
    }
}

fn parse_threshold(value: &str) -> Result<f32, String> {
    match value.parse::<f32>() {
        Ok(t) if (0.0..=100.0).contains(&t) => Ok(t),
        _ => Err(format!("{value:?} is not a similarity between 0 and 100")),
    }
}

/// `facegate dedup`.
#[derive(clap::Args, Clone, Debug)]
pub struct DedupArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub dedup: DedupSettings,
}

/// Dedup-search inside a process that runs other things too (`facegate dev`, tests): works the
/// `dedup` queue until `shutdown`, then drains.
pub async fn run_dedup(
    stack: Stack,
    limiter: Arc<FaceServiceLimiter>,
    worker: WorkerSettings,
    settings: DedupSettings,
    health: Health,
    shutdown: CancellationToken,
) {
    let sweep_every = Duration::from_secs(settings.dead_letter_sweep_secs);
    let make = || Dedup::new(stack.clone(), limiter.clone(), settings.clone());
    role::run_worker_sweeping_dead_letters(
        "dedup",
        &stack,
        Queue::Dedup,
        make,
        worker,
        sweep_every,
        health,
        shutdown,
    )
    .await
}

/// `facegate dedup`: the standalone role, until SIGTERM or SIGINT.
pub async fn dedup_main(args: DedupArgs) -> Result<(), RoleError> {
    let settings = args.dedup;
    role::standalone(
        "dedup",
        args.role,
        move |stack, limiter, worker, health, shutdown| {
            run_dedup(stack, limiter, worker, settings, health, shutdown)
        },
    )
    .await
}

/// Why a `FaceIndexed` was not settled.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// No registration record for the event: nothing to settle, ever.
    #[error("no registration {upload_id} of user {user_id}")]
    Missing { user_id: String, upload_id: String },
    /// A step that may pass on another attempt.
    #[error("registration {upload_id}: {step} failed")]
    Step {
        upload_id: String,
        step: &'static str,
        #[source]
        source: BoxError,
    },
}

/// The handler of the `dedup` queue.
pub struct Dedup {
    stack: Stack,
    store: RegistrationStore,
    faces: FaceCollection,
    settings: DedupSettings,
}

impl Dedup {
    pub fn new(stack: Stack, limiter: Arc<FaceServiceLimiter>, settings: DedupSettings) -> Self {
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

    /// Decides, writes, and reads again until the registration is final; then finishes what a
    /// crash may have left undone.
    async fn settle(&self, event: &FaceIndexed) -> Result<(), DedupError> {
        let step = |step: &'static str| {
            let upload_id = event.upload_id.to_string();
            move |source: BoxError| DedupError::Step {
                upload_id,
                step,
                source,
            }
        };
        for _ in 0..MAX_ROUNDS {
            let stored = self
                .store
                .get(&event.user_id, &event.upload_id)
                .await
                .map_err(|e| step("reading the registration")(Box::new(e)))?
                .ok_or_else(|| DedupError::Missing {
                    user_id: event.user_id.to_string(),
                    upload_id: event.upload_id.to_string(),
                })?;
            let record = &stored.record;
            if record.state != RegistrationState::Indexed {
                self.publish_alert_if_due(&stored)
                    .await
                    .map_err(step("publishing the duplicate alert"))?;
                self.delete_stale_faces(record)
                    .await
                    .map_err(step("deleting replaced and rejected faces"))?;
                return Ok(());
            }
            let Some(face_id) = record.face_id.as_deref() else {
                return Err(step("reading the face id")(
                    "INDEXED record without a face id".into(),
                ));
            };
            let duplicate = self
                .find_duplicate(record, face_id)
                .await
                .map_err(step("searching for duplicates"))?;
            match (&duplicate, self.settings.policy) {
                (Some(duplicate), DuplicatePolicy::Reject) => {
                    tracing::warn!(upload = %record.upload_id, user = %record.user_id, of = %duplicate.user_id, similarity = duplicate.similarity, "duplicate registration: rejected");
                    let rejected = RegistrationState::Rejected {
                        reasons: vec![RejectionReason::Duplicate],
                    };
                    self.store
                        .finish(
                            &record.user_id,
                            &record.upload_id,
                            &rejected,
                            Some(duplicate),
                        )
                        .await
                        .map_err(|e| step("rejecting the duplicate")(Box::new(e)))?;
                }
                (duplicate, _) => {
                    if let Some(duplicate) = duplicate {
                        tracing::warn!(upload = %record.upload_id, user = %record.user_id, of = %duplicate.user_id, similarity = duplicate.similarity, "duplicate registration: flagged");
                    }
                    self.activate(record, face_id, duplicate.as_ref())
                        .await
                        .map_err(step("activating"))?;
                }
            }
            // The next round reads what was written (or what a concurrent attempt wrote).
        }
        Err(step("settling")(
            format!("the registration kept changing under {MAX_ROUNDS} attempts").into(),
        ))
    }

    /// The first match that makes this registration a duplicate, best match first.
    async fn find_duplicate(
        &self,
        record: &RegistrationRecord,
        face_id: &str,
    ) -> Result<Option<DuplicateMatch>, BoxError> {
        let mut matches = self
            .faces
            .search(face_id, self.settings.threshold, SEARCH_MAX_FACES)
            .await?;
        if matches.is_empty() {
            return Ok(None);
        }
        matches.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        // The user's own faces match too (the same person): skipped without an index lookup,
        // and those still held date the user's claim on the face.
        let own = self.store.of_user(&record.user_id).await?;
        let is_own = |upload: &str| own.iter().any(|s| s.record.upload_id.as_str() == upload);
        let own_matches = own.iter().map(|s| &s.record).filter(|own| {
            matches.iter().any(|m| {
                m.external_image_id.as_deref() == Some(own.upload_id.as_str())
                    && Some(m.face_id.as_str()) == own.face_id.as_deref()
            })
        });
        let claim = claim_of(record, own_matches);
        for candidate in &matches {
            if candidate.face_id == face_id
                || candidate.external_image_id.as_deref().is_some_and(is_own)
            {
                continue;
            }
            // Faces without a record (being indexed, or left behind) are nobody's yet.
            let Some(theirs) = self.store.by_face(&candidate.face_id).await? else {
                continue;
            };
            if counts_as_duplicate(record, claim, &theirs.record) {
                return Ok(Some(DuplicateMatch {
                    user_id: theirs.record.user_id,
                    face_id: candidate.face_id.clone(),
                    similarity: candidate.similarity,
                }));
            }
        }
        Ok(None)
    }

    /// ACTIVE (and the previous ACTIVE REPLACED), or REPLACED when a newer one already signs
    /// in. A lost race is not an error: the caller reads again and decides again.
    async fn activate(
        &self,
        record: &RegistrationRecord,
        face_id: &str,
        duplicate: Option<&DuplicateMatch>,
    ) -> Result<(), BoxError> {
        let current = self.store.active_of(&record.user_id).await?;
        match current {
            Some(active) if active.is_newer_than(record) => {
                tracing::info!(upload = %record.upload_id, newer = %active.upload_id, "a newer registration is already active: replaced");
                let replaced = RegistrationState::Replaced {
                    by_upload_id: active.upload_id,
                };
                self.store
                    .finish(&record.user_id, &record.upload_id, &replaced, duplicate)
                    .await?;
            }
            previous => {
                let outcome = self
                    .store
                    .activate(record, face_id, duplicate, previous.as_ref())
                    .await?;
                if outcome == Activation::Committed {
                    tracing::info!(upload = %record.upload_id, user = %record.user_id, replaced = ?previous.map(|p| p.upload_id.to_string()), "active");
                }
            }
        }
        Ok(())
    }

    /// Publishes the duplicate's security alert, unless the record says it went out already.
    async fn publish_alert_if_due(&self, stored: &StoredRegistration) -> Result<(), BoxError> {
        let record = &stored.record;
        let Some(duplicate) = &record.duplicate_of else {
            return Ok(());
        };
        if stored.alert_published {
            return Ok(());
        }
        let action = match record.state {
            RegistrationState::Rejected { .. } => "rejected",
            _ => "flagged",
        };
        let mut details = serde_json::Map::new();
        details.insert("upload_id".into(), record.upload_id.to_string().into());
        details.insert("face_id".into(), record.face_id.clone().into());
        details.insert("matched_user".into(), duplicate.user_id.to_string().into());
        details.insert("matched_face".into(), duplicate.face_id.clone().into());
        details.insert("similarity".into(), f64::from(duplicate.similarity).into());
        details.insert("action".into(), action.into());
        let alert = SecurityAlert {
            alert_id: duplicate_alert_id(record),
            kind: AlertKind::DuplicateRegistration,
            severity: Severity::High,
            subject: AlertSubject::User(record.user_id.clone()),
            summary: format!(
                "registration {} of {} shows the face of {} (similarity {:.2}): {action}",
                record.upload_id, record.user_id, duplicate.user_id, duplicate.similarity
            ),
            details,
            time: Utc::now(),
        };
        events::publish(
            &self.stack.clients.sns,
            self.stack.topic_arn(Topic::SecurityAlerts),
            &alert,
        )
        .await?;
        self.store
            .mark_alert_published(&record.user_id, &record.upload_id)
            .await?;
        Ok(())
    }

    /// Deletes the faces of the user's REPLACED, REJECTED and FAILED registrations: final
    /// states never change, so these faces can never sign in again. Repeats cleanly.
    async fn delete_stale_faces(&self, record: &RegistrationRecord) -> Result<(), BoxError> {
        let stale: Vec<String> = self
            .store
            .of_user(&record.user_id)
            .await?
            .into_iter()
            .filter(|s| {
                matches!(
                    s.record.state,
                    RegistrationState::Replaced { .. }
                        | RegistrationState::Rejected { .. }
                        | RegistrationState::Failed { .. }
                )
            })
            .filter_map(|s| s.record.face_id)
            .collect();
        if !stale.is_empty() {
            self.faces.delete(&stale).await?;
        }
        Ok(())
    }

    /// The registration's message will never succeed (its last delivery failed, or it is in
    /// the dead-letter queue): FAILED if still INDEXED. Then, whoever made it final, what its
    /// final state leaves to do is done, best effort: its face deleted unless it is ACTIVE,
    /// its duplicate alert published. An earlier attempt may have marked it FAILED and died,
    /// or lost the face service, before that: the sweep offers the message again every round
    /// until it is done.
    async fn fail(&self, event: &FaceIndexed, detail: String) {
        let failed = RegistrationState::Failed { detail };
        match self
            .store
            .finish(&event.user_id, &event.upload_id, &failed, None)
            .await
        {
            Ok(true) => {
                tracing::error!(upload = %event.upload_id, user = %event.user_id, "registration FAILED");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(upload = %event.upload_id, error = %report::chain(&e), "could not mark the registration FAILED");
                return;
            }
        }
        let stored = match self.store.get(&event.user_id, &event.upload_id).await {
            Ok(Some(stored)) if stored.record.state.is_final() => stored,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(upload = %event.upload_id, error = %report::chain(&e), "could not read the failed registration");
                return;
            }
        };
        if let Err(e) = self.publish_alert_if_due(&stored).await {
            tracing::error!(upload = %event.upload_id, error = %report::chain(e.as_ref()), "the duplicate alert could not be published (the sweep tries again)");
        }
        if let Err(e) = self.delete_stale_faces(&stored.record).await {
            tracing::error!(face_id = %event.face_id, error = %report::chain(e.as_ref()), "its face could not be deleted (the sweep tries again)");
        }
    }
}

impl SettlesDeadLetters for Dedup {
    async fn settle_dead_letter(&self, body: &str) {
        match Notification::<FaceIndexed>::parse(body) {
            Ok(note) => {
                let detail = "its FaceIndexed message reached the dead-letter queue".to_string();
                self.fail(&note.event, detail).await;
            }
            Err(e) => {
                tracing::warn!(error = %report::chain(&e), "dead letter is not a FaceIndexed: left alone")
            }
        }
    }
}

/// The alert id of a duplicate registration: one per registration, so a redelivered message
/// publishes the same id again rather than a new alert.
pub fn duplicate_alert_id(record: &RegistrationRecord) -> String {
    format!(
        "duplicate-registration:{}:{}",
        record.user_id, record.upload_id
    )
}

impl Handler for Dedup {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let note =
            Notification::<FaceIndexed>::parse(&message.body).map_err(HandlerError::permanent)?;
        match self.settle(&note.event).await {
            Ok(()) => Ok(()),
            Err(e @ DedupError::Missing { .. }) => Err(HandlerError::permanent(e)),
            Err(e) => {
                if role::is_last_attempt(message, &self.stack) {
                    let detail = format!(
                        "gave up after {} deliveries: {}",
                        message.receive_count,
                        report::chain(&e)
                    );
                    self.fail(&note.event, detail).await;
                }
                Err(HandlerError::transient(e))
            }
        }
    }
}
