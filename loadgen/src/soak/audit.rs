//! The soak's final audit: once the load is over and the queues have drained, read the end
//! state of the stack and what its feeds heard, and judge it, one PASS/FAIL line per property:
//!
//! 1. every registration is in exactly one final state (ACTIVE, REPLACED, REJECTED or
//!    FAILED), no user has two ACTIVE registrations, and the table holds no other
//!    registration;
//! 2. the collection (ListFaces through the Rekognition API) holds exactly one face per ACTIVE
//!    registration, that registration's, and no other face: no ACTIVE registration without its
//!    face and no face without its registration, however often the engine died under
//!    IndexFaces and DeleteFaces;
//! 3. every failed sign-in was counted exactly once: the failure-alert worker's user windows
//!    add up to the distinct failures published on `auth-events` (by event id; a failure the
//!    verifier published twice counts once), and every refusal a client saw was published;
//! 4. nothing is in flight: messages visible plus not visible are 0 on every work queue;
//! 5. every dead-letter queue is empty (the soak sends no poison);
//! 6. every attempt refused at its first step was a user the alerts worker had locked;
//! 7. every sign-in was answered, and every one that got tokens was genuine (through the pool:
//!    tokens that check against the pool's JWKS and name the user);
//! 8. every alert was raised once: one `duplicate-registration` alert per registration the
//!    records call a duplicate and none other, one `lockout` alert per lock in the users table,
//!    none about a user who is not an impostors' target (the same id delivered twice is
//!    counted apart: alerts carry their id for subscribers to drop repeats);
//! 9. every fault of the chaos schedule happened, and every SIGKILLed trigger Lambda was
//!    replaced by the emulator on a later invocation;
//! 10. every role exited 0 within 30 s of SIGTERM.
//!
//! [`gather`] reads the evidence; [`judge`] turns it into lines (pure, so it is unit-tested).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use facegate_shared::config::{Queue, Table};
use facegate_shared::events::{AlertKind, AlertSubject, AuthEvent, AuthOutcome};
use facegate_shared::ids::{ChallengeId, UserId};
use facegate_shared::registration::RegistrationState;
use facegate_shared::stack::Stack;
use facegate_shared::tables::{auth_failures, users};
use facegate_workers::dedup::duplicate_alert_id;

use super::SoakError;
use super::chaos::{Fault, Happened, Schedule};
use super::feeds::Heard;
use super::fleet::{EXIT_WITHIN, ExitReport};
use super::registrations::{Records, Upload};
use super::signins::{Attempt, Channel, Kind, Outcome};

/// One audited property.
#[derive(Clone, Debug)]
pub struct Line {
    pub passed: bool,
    pub text: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{verdict}  {}", self.text)
    }
}

/// What the audit reads from the stack at the end.
#[derive(Debug, Default)]
pub struct Evidence {
    pub records: Records,
    /// Face id -> external image id (the upload id).
    pub faces: HashMap<String, String>,
    /// Sum of every `user#` window of the auth-failures table.
    pub counted_failures: i64,
    /// Queue name -> messages visible + not visible.
    pub work_queues: Vec<(String, u64)>,
    pub dead_letter_queues: Vec<(String, u64)>,
    /// Users whose users item holds a lock, and until when.
    pub locked: BTreeMap<UserId, i64>,
    /// What the soak's subscriptions heard.
    pub heard: Heard,
}

/// How long after the emulator answers again a refusal may still have found SNS out of reach:
/// the verifier's deadline (4.5 s) and a margin.
const OUTAGE_GRACE: Duration = Duration::from_secs(6);

/// Why the attempts of `kind` that Verify refused were refused, by reason code, as the
/// verifier published it (`unpublished` when no event names the attempt's challenge).
pub fn refusal_reasons(attempts: &[Attempt], heard: &Heard, kind: Kind) -> BTreeMap<String, usize> {
    let reasons: HashMap<&ChallengeId, String> = heard
        .auth_events
        .iter()
        .filter_map(|e| match (e.outcome, &e.challenge_id) {
            (AuthOutcome::Failure { reason }, Some(challenge)) => Some((
                challenge,
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{reason:?}")),
            )),
            _ => None,
        })
        .collect();
    let mut counts = BTreeMap::new();
    for attempt in attempts
        .iter()
        .filter(|a| a.kind == kind && a.verify_failed)
    {
        let reason = attempt
            .challenge
            .as_ref()
            .and_then(|c| reasons.get(c).cloned())
            .unwrap_or_else(|| "unpublished".into());
        *counts.entry(reason).or_default() += 1;
    }
    counts
}

/// What the run did besides its load: the users impostors aimed at, the chaos planned and
/// what happened of it, how the roles exited.
pub struct Run<'a> {
    pub targets: &'a BTreeSet<UserId>,
    pub schedule: &'a Schedule,
    pub happened: &'a [Happened],
    pub exits: &'a [ExitReport],
}

/// Messages visible plus in flight on the queue at `url`.
pub async fn depth(stack: &Stack, url: &str) -> Result<u64, SoakError> {
    let depth = stack
        .queue_depth(url)
        .await
        .map_err(|e| SoakError::aws("GetQueueAttributes", e))?;
    Ok(depth.total())
}

/// The failures the alerts worker counted against users (every window, not only the current
/// one: a long soak spans several).
pub async fn counted_failures(stack: &Stack) -> Result<i64, SoakError> {
    let items = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.table(Table::AuthFailures))
        .consistent_read(true)
        .filter_expression("begins_with(#s, :user)")
        .expression_attribute_names("#s", auth_failures::SUBJECT)
        .expression_attribute_values(":user", AttributeValue::S("user#".into()))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| SoakError::aws("Scan auth-failures", e))?;
    Ok(auth_failures::total(&items))
}

/// Waits until every work queue has been empty for two readings in a row, or `within` has
/// passed (the audit then shows what is left).
pub async fn drain(stack: &Stack, within: Duration) -> Result<(), SoakError> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut empty_readings = 0;
    loop {
        let mut in_flight = 0;
        for queue in Queue::ALL {
            in_flight += depth(stack, stack.queue_url(queue)).await?;
        }
        empty_readings = if in_flight == 0 {
            empty_readings + 1
        } else {
            0
        };
        if empty_readings >= 2 {
            return Ok(());
        }
        if started.elapsed() > within {
            tracing::warn!(in_flight, "the stack did not drain in time");
            return Ok(());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(in_flight, "waiting for the queues to drain");
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every face of the stack's collection.
async fn faces(stack: &Stack) -> Result<HashMap<String, String>, SoakError> {
    let mut faces = HashMap::new();
    let mut token = None;
    loop {
        let out = stack
            .clients
            .rekognition
            .list_faces()
            .collection_id(stack.names.collection())
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| SoakError::aws("ListFaces", e))?;
        for face in out.faces() {
            faces.insert(
                face.face_id().unwrap_or_default().to_string(),
                face.external_image_id().unwrap_or_default().to_string(),
            );
        }
        token = out.next_token;
        if token.is_none() {
            return Ok(faces);
        }
    }
}

/// Every user whose users item holds a lock, with its end (epoch seconds).
async fn locked(stack: &Stack) -> Result<BTreeMap<UserId, i64>, SoakError> {
    let items = stack
        .clients
        .dynamodb
        .scan()
        .table_name(stack.table(Table::Users))
        .consistent_read(true)
        .filter_expression("attribute_exists(#l)")
        .expression_attribute_names("#l", users::LOCKED_UNTIL)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| SoakError::aws("Scan users", e))?;
    let mut locked = BTreeMap::new();
    for item in items {
        let user = item.get(users::USER_ID).and_then(|v| v.as_s().ok());
        let until = item
            .get(users::LOCKED_UNTIL)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok());
        if let (Some(user), Some(until)) = (user, until)
            && let Ok(user) = UserId::parse(user.as_str())
        {
            locked.insert(user, until);
        }
    }
    Ok(locked)
}

/// Reads the end state of the stack; `heard` is what the feeds held.
pub async fn gather(stack: &Stack, heard: Heard) -> Result<Evidence, SoakError> {
    let mut evidence = Evidence {
        records: super::registrations::records(stack).await?,
        faces: faces(stack).await?,
        counted_failures: counted_failures(stack).await?,
        locked: locked(stack).await?,
        heard,
        ..Evidence::default()
    };
    for queue in Queue::ALL {
        evidence.work_queues.push((
            stack.names.queue(queue),
            depth(stack, stack.queue_url(queue)).await?,
        ));
        evidence.dead_letter_queues.push((
            stack.names.dlq(queue),
            depth(stack, stack.dlq_url(queue)).await?,
        ));
    }
    Ok(evidence)
}

/// `", first: <x>"` when there is a first.
fn first<T: fmt::Display>(what: &str, items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .next()
        .map(|x| format!("; {what}: {x}"))
        .unwrap_or_default()
}

/// The audit's lines.
pub fn judge(
    evidence: &Evidence,
    uploads: &[Upload],
    attempts: &[Attempt],
    run: &Run<'_>,
) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut line = |passed: bool, text: String| lines.push(Line { passed, text });

    // 1. One final record per upload, one ACTIVE per user, no record the soak did not cause.
    let (mut active, mut replaced, mut rejected, mut failed, mut other) = (0, 0, 0, 0, 0);
    let mut active_faces: HashMap<String, String> = HashMap::new();
    let mut active_per_user: HashMap<&UserId, usize> = HashMap::new();
    let mut unfinished = Vec::new();
    for upload in uploads {
        match evidence
            .records
            .get(&(upload.user.clone(), upload.upload.clone()))
            .map(Vec::as_slice)
        {
            Some([record]) => match &record.state {
                RegistrationState::Active => {
                    active += 1;
                    *active_per_user.entry(&upload.user).or_default() += 1;
                    if let Some(face) = &record.face_id {
                        active_faces.insert(face.clone(), record.upload_id.to_string());
                    }
                }
                RegistrationState::Replaced { .. } => replaced += 1,
                RegistrationState::Rejected { .. } => rejected += 1,
                RegistrationState::Failed { .. } => failed += 1,
                state => {
                    other += 1;
                    unfinished.push(format!(
                        "{}/{} {}",
                        upload.user,
                        upload.upload,
                        state.code()
                    ));
                }
            },
            _ => {
                other += 1;
                unfinished.push(format!("{}/{} missing", upload.user, upload.upload));
            }
        }
    }
    let twice_active = active_per_user.values().filter(|n| **n > 1).count();
    let strangers = evidence.records.len().saturating_sub(uploads.len());
    line(
        other == 0
            && strangers == 0
            && twice_active == 0
            && evidence.records.len() == uploads.len(),
        format!(
            "every registration in exactly one final state: {} uploads -> ACTIVE {active}, \
             REPLACED {replaced}, REJECTED {rejected}, FAILED {failed}, \
             missing/unfinished/other {other}; {} records in the table; {twice_active} users \
             with two ACTIVE{}",
            uploads.len(),
            evidence.records.len(),
            first("first unfinished", &unfinished)
        ),
    );

    // 2. The collection is exactly the ACTIVE faces.
    let extra: Vec<String> = evidence
        .faces
        .iter()
        .filter(|(face, image)| active_faces.get(*face) != Some(image))
        .map(|(face, image)| format!("{face} (image {image})"))
        .collect();
    let absent = active_faces
        .keys()
        .filter(|face| !evidence.faces.contains_key(*face))
        .count();
    let engine_kills = run
        .happened
        .iter()
        .filter(|h| h.event.fault == Fault::Kill(super::fleet::Role::Engine))
        .count();
    line(
        extra.is_empty() && absent == 0 && active_faces.len() == active,
        format!(
            "one face per ACTIVE registration and no other, after {engine_kills} engine \
             SIGKILL(s): {} faces in the collection for {active} ACTIVE, {absent} ACTIVE \
             without its face, {} faces without an ACTIVE registration{}",
            evidence.faces.len(),
            extra.len(),
            first("first", &extra)
        ),
    );

    // 3. Failures counted exactly once.
    let failures: Vec<&AuthEvent> = evidence
        .heard
        .auth_events
        .iter()
        .filter(|e| matches!(e.outcome, AuthOutcome::Failure { .. }))
        .collect();
    let distinct: HashMap<uuid::Uuid, &AuthEvent> =
        failures.iter().map(|e| (e.event_id, *e)).collect();
    let repeats = failures.len() - distinct.len();
    let the_stacks = distinct
        .values()
        .filter(|e| matches!(e.outcome, AuthOutcome::Failure { reason } if reason.is_the_stacks_fault()))
        .count();
    let countable = distinct.len() - the_stacks;
    let published: HashSet<&ChallengeId> = distinct
        .values()
        .filter_map(|e| e.challenge_id.as_ref())
        .collect();
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.verify_failed).collect();
    let unpublished: Vec<&Attempt> = refused
        .iter()
        .copied()
        .filter(|a| a.challenge.as_ref().is_none_or(|c| !published.contains(c)))
        .collect();
    // While the emulator restarts the verifier cannot reach SNS: a refusal it answers then is
    // not published (by design: an answer does not wait for the alerting path).
    let outages: Vec<(Instant, Instant)> = run
        .happened
        .iter()
        .filter(|h| h.event.fault == Fault::RestartEmulator)
        .map(|h| (h.at, h.at + h.took + OUTAGE_GRACE))
        .collect();
    let unexplained = unpublished
        .iter()
        .filter(|a| {
            !outages
                .iter()
                .any(|(from, to)| a.ended >= *from && a.ended <= *to)
        })
        .count();
    line(
        evidence.counted_failures == countable as i64 && unexplained == 0,
        format!(
            "every failed sign-in counted once: {} in the alert worker's user windows, {countable} \
             failures published on auth-events that count against a user ({the_stacks} more \
             the stack caused, counted against nobody; {repeats} published twice); {} refusals \
             seen by the clients, {} of them not published ({unexplained} of those outside the \
             emulator's restart)",
            evidence.counted_failures,
            refused.len(),
            unpublished.len()
        ),
    );

    // 4, 5. Queues.
    let busy: Vec<String> = evidence
        .work_queues
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    line(
        busy.is_empty(),
        format!(
            "nothing in flight (visible + not visible) on {} work queues{}",
            evidence.work_queues.len(),
            first("still there", &busy)
        ),
    );
    let dead: Vec<String> = evidence
        .dead_letter_queues
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    line(
        dead.is_empty(),
        format!(
            "every dead-letter queue empty ({} queues, no poison sent){}",
            evidence.dead_letter_queues.len(),
            first("not empty", &dead)
        ),
    );

    // 6. Lockouts.
    let refused = super::signins::locked_out(attempts);
    let unexplained: Vec<&UserId> = refused
        .iter()
        .filter(|u| !evidence.locked.contains_key(*u))
        .collect();
    line(
        unexplained.is_empty(),
        format!(
            "the first step refused only locked users: {} users refused, {} of them not \
             locked{}",
            refused.len(),
            unexplained.len(),
            first("first", &unexplained)
        ),
    );

    // 7. Sign-in answers; tokens only for genuine attempts.
    let errors: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Error(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    let signed_in = |channel: Channel| {
        attempts
            .iter()
            .filter(|a| a.channel == channel && a.outcome == Outcome::SignedIn)
            .count()
    };
    let false_accepts = attempts
        .iter()
        .filter(|a| a.kind == Kind::Impostor && a.outcome == Outcome::SignedIn)
        .count();
    line(
        errors.is_empty() && false_accepts == 0,
        format!(
            "every sign-in answered and every one with tokens genuine: {} errors, \
             {false_accepts} impostors with tokens; {} signed in through the pool (tokens \
             checked against its JWKS, naming the user), {} over HTTP{}",
            errors.len(),
            signed_in(Channel::Pool),
            signed_in(Channel::Http),
            first("first error", &errors)
        ),
    );

    // 8. Alerts raised once.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for alert in &evidence.heard.alerts {
        *ids.entry(alert.alert_id.as_str()).or_default() += 1;
    }
    let delivered_twice = ids.values().filter(|n| **n > 1).count();
    let raised = |kind: AlertKind| -> BTreeSet<&str> {
        evidence
            .heard
            .alerts
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.alert_id.as_str())
            .collect()
    };
    let expected_duplicates: BTreeSet<String> = evidence
        .records
        .values()
        .flatten()
        .filter(|r| r.duplicate_of.is_some())
        .map(duplicate_alert_id)
        .collect();
    let duplicates = raised(AlertKind::DuplicateRegistration);
    let duplicates_missing = expected_duplicates
        .iter()
        .filter(|id| !duplicates.contains(id.as_str()))
        .count();
    let duplicates_unexpected = duplicates
        .iter()
        .filter(|id| !expected_duplicates.contains(**id))
        .count();
    let lockouts = raised(AlertKind::Lockout);
    let locks_without_alert: Vec<String> = evidence
        .locked
        .iter()
        .map(|(user, until)| format!("lockout:user#{user}:{until}"))
        .filter(|id| !lockouts.contains(id.as_str()))
        .collect();
    let about_genuine: Vec<&str> = evidence
        .heard
        .alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Lockout)
        .filter(|a| matches!(&a.subject, AlertSubject::User(u) if !run.targets.contains(u)))
        .map(|a| a.alert_id.as_str())
        .collect();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for alert in &evidence.heard.alerts {
        *by_kind.entry(alert.kind.as_str()).or_default() += 1;
    }
    line(
        duplicates_missing == 0
            && duplicates_unexpected == 0
            && locks_without_alert.is_empty()
            && about_genuine.is_empty(),
        format!(
            "every alert raised once: {} duplicate-registration alerts for {} duplicate \
             registrations ({duplicates_missing} missing, {duplicates_unexpected} without \
             one), {} lockout alerts for {} locks ({} locks without one, {} about users no \
             impostor aimed at); {} alerts delivered in all {by_kind:?}, {delivered_twice} ids \
             delivered twice{}",
            duplicates.len(),
            expected_duplicates.len(),
            lockouts.len(),
            evidence.locked.len(),
            locks_without_alert.len(),
            about_genuine.len(),
            evidence.heard.alerts.len(),
            first(
                "first",
                locks_without_alert
                    .iter()
                    .map(String::as_str)
                    .chain(about_genuine.iter().copied())
            )
        ),
    );

    // 9. The chaos happened as planned.
    let planned = run.schedule.events.len();
    let missed = planned.saturating_sub(run.happened.len());
    let lambda_kills: Vec<_> = run
        .happened
        .iter()
        .filter_map(|h| h.lambda.as_ref())
        .collect();
    let not_replaced = lambda_kills
        .iter()
        .filter(|k| k.replaced_by.is_none())
        .count();
    line(
        missed == 0 && not_replaced == 0,
        format!(
            "the chaos happened as planned: {} of {planned} faults (seed {}); {} trigger \
             Lambda SIGKILLs, each replaced by the emulator on a later invocation: {}",
            run.happened.len(),
            run.schedule.seed,
            lambda_kills.len(),
            if not_replaced == 0 {
                "yes".to_string()
            } else {
                format!("{not_replaced} not")
            }
        ),
    );

    // 10. Graceful exits.
    let unclean: Vec<String> = run
        .exits
        .iter()
        .filter(|e| !e.clean())
        .map(|e| match e.status {
            Some(status) => format!("{} {status}", e.role.name()),
            None => format!("{} still running", e.role.name()),
        })
        .collect();
    line(
        unclean.is_empty(),
        format!(
            "every role exited 0 within {} s of SIGTERM{}",
            EXIT_WITHIN.as_secs(),
            first("not", &unclean)
        ),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use facegate_shared::events::{AuthChannel, AuthEvent, AuthFailureReason};
    use facegate_shared::ids::UploadId;
    use facegate_shared::registration::RegistrationRecord;

    fn upload(i: usize) -> Upload {
        Upload {
            user: UserId::parse(format!("u{i}")).unwrap(),
            upload: UploadId::random(),
            again: false,
            put_at: Utc::now(),
            retries: 0,
        }
    }

    fn record(upload: &Upload, state: RegistrationState, face: Option<&str>) -> RegistrationRecord {
        RegistrationRecord {
            state,
            face_id: face.map(str::to_string),
            ..RegistrationRecord::pending(
                upload.user.clone(),
                upload.upload.clone(),
                "bucket".into(),
                "key".into(),
                Utc::now(),
            )
        }
    }

    fn failure(user: &UserId) -> AuthEvent {
        AuthEvent {
            event_id: uuid::Uuid::new_v4(),
            user_id: user.clone(),
            outcome: AuthOutcome::Failure {
                reason: AuthFailureReason::NoMatch,
            },
            similarity: None,
            source: None,
            device: None,
            channel: AuthChannel::Cognito,
            challenge_id: None,
            time: Utc::now(),
        }
    }

    #[test]
    fn a_clean_end_state_passes_and_each_fault_fails_its_line() {
        let uploads = vec![upload(0), upload(1)];
        let mut evidence = Evidence {
            counted_failures: 1,
            work_queues: vec![("uploads".into(), 0)],
            dead_letter_queues: vec![("uploads-dlq".into(), 0)],
            ..Evidence::default()
        };
        evidence.records.insert(
            (uploads[0].user.clone(), uploads[0].upload.clone()),
            vec![record(&uploads[0], RegistrationState::Active, Some("f0"))],
        );
        evidence.records.insert(
            (uploads[1].user.clone(), uploads[1].upload.clone()),
            vec![record(
                &uploads[1],
                RegistrationState::Failed {
                    detail: "gone".into(),
                },
                None,
            )],
        );
        evidence
            .faces
            .insert("f0".into(), uploads[0].upload.to_string());
        let challenge = ChallengeId::random();
        let published = AuthEvent {
            challenge_id: Some(challenge.clone()),
            ..failure(&uploads[0].user)
        };
        // The same failure delivered twice is one failure.
        evidence.heard.auth_events = vec![published.clone(), published];
        let attempts = vec![Attempt {
            user: uploads[0].user.clone(),
            kind: Kind::Impostor,
            channel: Channel::Http,
            outcome: Outcome::Rejected,
            sequence: Duration::from_millis(5),
            verify: Some(Duration::from_millis(3)),
            verify_failed: true,
            restarts: 0,
            challenge: Some(challenge.clone()),
            ended: Instant::now(),
        }];
        let targets = BTreeSet::from([uploads[0].user.clone()]);
        let schedule = Schedule::new(1, 0, 0);
        let run = Run {
            targets: &targets,
            schedule: &schedule,
            happened: &[],
            exits: &[],
        };
        let all_pass = |lines: &[Line]| lines.iter().all(|l| l.passed);
        let lines = judge(&evidence, &uploads, &attempts, &run);
        assert!(all_pass(&lines), "{lines:#?}");

        let mut stray = Evidence {
            faces: evidence.faces.clone(),
            ..Evidence::default()
        };
        stray.faces.insert("f9".into(), "whatever".into());
        let lines = judge(&stray, &uploads, &attempts, &run);
        assert!(!lines[0].passed && !lines[1].passed && !lines[2].passed);

        evidence.counted_failures = 2;
        evidence.work_queues[0].1 = 1;
        let lines = judge(&evidence, &uploads, &attempts, &run);
        assert!(lines[0].passed && lines[1].passed);
        assert!(!lines[2].passed && !lines[3].passed && lines[4].passed);

        // A lock without its alert, and a planned fault that never happened.
        evidence.counted_failures = 1;
        evidence.work_queues[0].1 = 0;
        evidence
            .locked
            .insert(uploads[0].user.clone(), 1_700_000_000);
        let schedule = Schedule::new(1, 1, 0);
        let run = Run {
            schedule: &schedule,
            ..run
        };
        let lines = judge(&evidence, &uploads, &attempts, &run);
        assert!(lines[..7].iter().all(|l| l.passed), "{lines:#?}");
        assert_eq!(
            refusal_reasons(&attempts, &evidence.heard, Kind::Impostor),
            BTreeMap::from([("no-match".to_string(), 1)])
        );
        assert!(!lines[7].passed && !lines[8].passed && lines[9].passed);
    }
}
