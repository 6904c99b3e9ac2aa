//! The registration flow of the soak, and the roster the rest of the run reads it through.
//!
//! `clients` concurrent uploaders work through the [`Cast`]: a user of the pool signs up
//! first (`SignUp`; the local pool's PreSignUp trigger confirms them), then every user's photo
//! goes straight into S3, as an app with its own credentials would put it. A re-registering
//! user uploads a second photo once the roster shows their first one ACTIVE.
//!
//! Clients retry as a real app does: a call that failed (the emulator restarting, the trigger
//! Lambda killed under SignUp) is made again after a pause; one that succeeded is never
//! repeated. A `SignUp` that succeeded although its answer was lost comes back as
//! `UsernameExistsException` on the retry: done.
//!
//! The [`Roster`] reads the registrations table twice a second: which users are ACTIVE (sign-ins
//! go to them), and how many registrations are final (the chaos clock of the registration
//! workers).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::registration::{RegistrationRecord, RegistrationState};
use facegate_shared::stack::Stack;
use tokio_util::sync::CancellationToken;

use super::SoakError;
use super::cast::{Cast, Part, Person, REREGISTRATION_VARIANT};
use super::retry::{Patience, retrying};
use crate::cognito_app::CognitoApp;
use crate::pipeline::{Photo, variant};

/// One upload the soak made.
#[derive(Clone, Debug)]
pub struct Upload {
    pub user: UserId,
    pub upload: UploadId,
    /// A re-registration (the user's second upload).
    pub again: bool,
    /// When its PutObject returned.
    pub put_at: DateTime<Utc>,
    /// Calls made again after they failed (SignUp and PutObject).
    pub retries: u32,
}

/// Every registration record of the stack, by (user, upload).
pub type Records = HashMap<(UserId, UploadId), Vec<RegistrationRecord>>;

/// What the registrations table said at the last reading.
#[derive(Debug, Default)]
struct Reading {
    records: Records,
    /// Users with an ACTIVE registration.
    active: BTreeSet<UserId>,
    finals: usize,
}

/// The registrations table as the run sees it, read twice a second.
#[derive(Debug, Default)]
pub struct Roster {
    reading: RwLock<Reading>,
}

impl Roster {
    /// Reads the table now; a failed reading (the emulator restarting) keeps the last one.
    pub async fn refresh(&self, stack: &Stack) -> Result<(), SoakError> {
        let records = records(stack).await?;
        let mut active = BTreeSet::new();
        let mut finals = 0;
        for record in records.values().flatten() {
            if record.state == RegistrationState::Active {
                active.insert(record.user_id.clone());
            }
            if record.state.is_final() {
                finals += 1;
            }
        }
        if let Ok(mut reading) = self.reading.write() {
            *reading = Reading {
                records,
                active,
                finals,
            };
        }
        Ok(())
    }

    /// Refreshes twice a second until `stop`.
    pub async fn follow(&self, stack: &Stack, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.refresh(stack).await {
                tracing::debug!(error = %e, "reading the registrations failed; trying again");
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    pub fn is_active(&self, user: &UserId) -> bool {
        self.reading.read().is_ok_and(|r| r.active.contains(user))
    }

    /// The ACTIVE users among `candidates`, in their order.
    pub fn active_among<'a>(&self, candidates: &'a [UserId]) -> Vec<&'a UserId> {
        let Ok(reading) = self.reading.read() else {
            return Vec::new();
        };
        candidates
            .iter()
            .filter(|u| reading.active.contains(*u))
            .collect()
    }

    /// Registrations in a final state.
    pub fn finals(&self) -> usize {
        self.reading.read().map_or(0, |r| r.finals)
    }

    /// Whether `user`'s registration `upload` is final.
    fn is_final(&self, user: &UserId, upload: &UploadId) -> bool {
        self.reading.read().is_ok_and(|r| {
            r.records
                .get(&(user.clone(), upload.clone()))
                .is_some_and(|rs| rs.iter().all(|r| r.state.is_final()))
        })
    }
}

/// What every uploader shares.
#[derive(Clone)]
pub struct Uploaders {
    pub stack: Stack,
    /// The user pool's app, for the users who sign up in it.
    pub app: CognitoApp,
    pub password: String,
    pub photos: Arc<Vec<Photo>>,
    pub cast: Arc<Cast>,
    pub roster: Arc<Roster>,
    /// Uploads done so far.
    pub uploaded: Arc<AtomicUsize>,
    pub patience: Patience,
}

/// Runs every registration of the cast with `clients` concurrent uploaders: the first
/// registration of every user, then each re-registration once its user is ACTIVE.
pub async fn upload(uploaders: Uploaders, clients: usize) -> Result<Vec<Upload>, SoakError> {
    let cast = uploaders.cast.clone();
    // The work, in order: every user's first registration, then the second ones.
    let work: Arc<Vec<(usize, bool)>> = Arc::new(
        (0..cast.people.len())
            .map(|i| (i, false))
            .chain(
                cast.people
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.part == Part::Reregistering)
                    .map(|(i, _)| (i, true)),
            )
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (uploaders, work, next) = (uploaders.clone(), work.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            while let Some(&(i, again)) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                let person = &uploaders.cast.people[i];
                let upload = if again {
                    uploaders.register_again(person).await?
                } else {
                    Some(uploaders.register(person).await?)
                };
                if let Some(upload) = upload {
                    done.push(upload);
                    uploaders.uploaded.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, SoakError>(done)
        });
    }
    let mut uploads = Vec::with_capacity(work.len());
    while let Some(joined) = tasks.join_next().await {
        uploads.extend(joined.map_err(|e| SoakError::Run(e.to_string()))??);
    }
    Ok(uploads)
}

impl Uploaders {
    /// A user's first registration: sign up (pool users), then the photo.
    async fn register(&self, person: &Person) -> Result<Upload, SoakError> {
        let mut retries = 0;
        if person.through_pool {
            retries += retrying("SignUp", self.patience, || async {
                match self.app.sign_up(person.user.as_str(), &self.password).await {
                    Ok(_) => Ok(()),
                    // An earlier try got through; only its answer was lost.
                    Err(e) if e.cognito_code() == Some("UsernameExistsException") => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
        }
        let mut upload = self.put(person, person.variant, false).await?;
        upload.retries += retries;
        Ok(upload)
    }

    /// A re-registration, once the first registration is ACTIVE; `None` when it ended
    /// otherwise (then there is nothing to replace).
    async fn register_again(&self, person: &Person) -> Result<Option<Upload>, SoakError> {
        let started = Instant::now();
        while !self.roster.is_active(&person.user) {
            if started.elapsed() > self.patience.settle {
                tracing::warn!(user = %person.user, "never ACTIVE: no re-registration");
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let variant = REREGISTRATION_VARIANT + person.variant;
        self.put(person, variant, true).await.map(Some)
    }

    /// PUTs variant `n` of the person's photo as a new registration.
    async fn put(&self, person: &Person, n: usize, again: bool) -> Result<Upload, SoakError> {
        let upload = UploadId::random();
        let bytes = tokio::task::spawn_blocking({
            let (photos, photo) = (self.photos.clone(), person.photo);
            move || variant(&photos[photo].image, n)
        })
        .await
        .map_err(|e| SoakError::Run(e.to_string()))?;
        let key = format!("registrations/{}/{upload}.jpg", person.user);
        let retries = retrying("PutObject registration", self.patience, || async {
            self.stack
                .clients
                .s3
                .put_object()
                .bucket(self.stack.names.bucket())
                .key(&key)
                .content_type("image/jpeg")
                .body(bytes.clone().into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| facegate_shared::report::chain(&e))
        })
        .await?;
        Ok(Upload {
            user: person.user.clone(),
            upload,
            again,
            put_at: Utc::now(),
            retries,
        })
    }
}

/// Every registration record of the stack, by (user, upload).
pub async fn records(stack: &Stack) -> Result<Records, SoakError> {
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
    let mut records: Records = HashMap::new();
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

/// Waits until every upload is final by the roster, logging progress; gives up after
/// `within` (the audit then reports what is unfinished).
pub async fn settle(roster: &Roster, uploads: &[Upload], within: Duration) {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let settled = uploads
            .iter()
            .filter(|u| roster.is_final(&u.user, &u.upload))
            .count();
        if settled == uploads.len() {
            return;
        }
        if started.elapsed() > within {
            tracing::warn!(
                settled,
                uploads = uploads.len(),
                "registrations not all final in time"
            );
            return;
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                settled,
                uploads = uploads.len(),
                "registrations final so far"
            );
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
