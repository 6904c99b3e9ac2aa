//! The soak's final audit: once the load is over and the queues have drained, read the end
//! state of the stack and judge it, one PASS/FAIL line per property:
//!
//! 1. every registration is in exactly one final state (ACTIVE, REJECTED or FAILED), and the
//!    table holds no other registration;
//! 2. the collection (ListFaces through the Rekognition API) holds exactly one face per ACTIVE
//!    registration, that registration's, and no other face;
//! 3. every failed sign-in was counted exactly once: the failure-alert worker's user windows
//!    in DynamoDB add up to the number of Verify answers `false` the verifier published;
//! 4. nothing is in flight: messages visible plus not visible are 0 on every work queue;
//! 5. every dead-letter queue is empty (the soak sends no poison);
//! 6. every attempt refused at its first Define was a user the alerts worker had locked;
//! 7. no sign-in request failed, and no impostor signed in;
//! 8. every role exited 0 within 30 s of SIGTERM.
//!
//! [`gather`] reads the evidence; [`judge`] turns it into lines (pure, so it is unit-tested).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use facegate_shared::config::{Queue, Table};
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::registration::{RegistrationRecord, RegistrationState};
use facegate_shared::stack::Stack;
use facegate_shared::tables::{auth_failures, users};

use super::SoakError;
use super::fleet::{EXIT_WITHIN, ExitReport};
use super::registrations::Upload;
use super::signins::{Attempt, Kind, Outcome};

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
    pub records: HashMap<(UserId, UploadId), Vec<RegistrationRecord>>,
    /// Face id -> external image id (the upload id).
    pub faces: HashMap<String, String>,
    /// Sum of every `user#` window of the auth-failures table.
    pub counted_failures: i64,
    /// Queue name -> messages visible + not visible.
    pub work_queues: Vec<(String, u64)>,
    pub dead_letter_queues: Vec<(String, u64)>,
    /// Users whose users item holds a lock.
    pub locked: BTreeSet<UserId>,
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

/// Waits until every work queue is empty and the alerts worker has counted `failures`, or
/// `within` has passed (the audit then shows what is left).
pub async fn drain(stack: &Stack, failures: i64, within: Duration) -> Result<(), SoakError> {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let mut in_flight = 0;
        for queue in Queue::ALL {
            in_flight += depth(stack, stack.queue_url(queue)).await?;
        }
        let counted = counted_failures(stack).await?;
        if in_flight == 0 && counted == failures {
            return Ok(());
        }
        if started.elapsed() > within {
            tracing::warn!(
                in_flight,
                counted,
                failures,
                "the stack did not drain in time"
            );
            return Ok(());
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                in_flight,
                counted,
                failures,
                "waiting for the queues to drain"
            );
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Which of `candidates` have a lock in their users item.
async fn locked(
    stack: &Stack,
    candidates: &BTreeSet<UserId>,
) -> Result<BTreeSet<UserId>, SoakError> {
    let mut locked = BTreeSet::new();
    for user in candidates {
        let item = stack
            .clients
            .dynamodb
            .get_item()
            .table_name(stack.table(Table::Users))
            .key(users::USER_ID, AttributeValue::S(user.as_str().into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| SoakError::aws("GetItem users", e))?
            .item;
        if item.is_some_and(|item| item.contains_key(users::LOCKED_UNTIL)) {
            locked.insert(user.clone());
        }
    }
    Ok(locked)
}

/// Reads the end state of the stack.
pub async fn gather(stack: &Stack, locked_out: &BTreeSet<UserId>) -> Result<Evidence, SoakError> {
    let mut evidence = Evidence {
        records: super::registrations::records(stack).await?,
        faces: faces(stack).await?,
        counted_failures: counted_failures(stack).await?,
        locked: locked(stack, locked_out).await?,
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

/// The audit's lines.
pub fn judge(
    evidence: &Evidence,
    uploads: &[Upload],
    attempts: &[Attempt],
    exits: &[ExitReport],
) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut line = |passed: bool, text: String| lines.push(Line { passed, text });

    // 1. One final record per upload, and no record the soak did not cause.
    let (mut active, mut rejected, mut failed, mut other) = (0, 0, 0, 0);
    let mut active_faces: HashMap<String, String> = HashMap::new();
    for upload in uploads {
        match evidence
            .records
            .get(&(upload.user.clone(), upload.upload.clone()))
            .map(Vec::as_slice)
        {
            Some([record]) => match &record.state {
                RegistrationState::Active => {
                    active += 1;
                    if let Some(face) = &record.face_id {
                        active_faces.insert(face.clone(), record.upload_id.to_string());
                    }
                }
                RegistrationState::Rejected { .. } => rejected += 1,
                RegistrationState::Failed { .. } => failed += 1,
                _ => other += 1,
            },
            _ => other += 1,
        }
    }
    let strangers = evidence.records.len().saturating_sub(uploads.len());
    line(
        other == 0 && strangers == 0 && evidence.records.len() == uploads.len(),
        format!(
            "every registration in exactly one final state: {} uploads -> ACTIVE {active}, \
             REJECTED {rejected}, FAILED {failed}, missing/unfinished/other {other}; {} records \
             in the table",
            uploads.len(),
            evidence.records.len()
        ),
    );

    // 2. The collection is exactly the ACTIVE faces.
    let extra = evidence
        .faces
        .iter()
        .filter(|(face, image)| active_faces.get(*face) != Some(image))
        .count();
    let absent = active_faces
        .keys()
        .filter(|face| !evidence.faces.contains_key(*face))
        .count();
    line(
        extra == 0 && absent == 0 && active_faces.len() == active,
        format!(
            "one face per ACTIVE registration and no other: {} faces in the collection for \
             {active} ACTIVE, {absent} missing, {extra} not belonging to an ACTIVE registration",
            evidence.faces.len()
        ),
    );

    // 3. Failures counted exactly once.
    let published = attempts.iter().filter(|a| a.verify_failed).count() as i64;
    line(
        evidence.counted_failures == published,
        format!(
            "every failed sign-in counted once: {} in the alert worker's user windows, {published} \
             Verify answers false",
            evidence.counted_failures
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
            if busy.is_empty() {
                String::new()
            } else {
                format!(": {}", busy.join(", "))
            }
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
            if dead.is_empty() {
                String::new()
            } else {
                format!(": {}", dead.join(", "))
            }
        ),
    );

    // 6. Lockouts.
    let refused = super::signins::locked_out(attempts);
    let unexplained = refused.difference(&evidence.locked).count();
    line(
        unexplained == 0,
        format!(
            "Define or Create refused only locked users: {} users refused, {unexplained} of them \
             not locked",
            refused.len()
        ),
    );

    // 7. Sign-in answers.
    let failed: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.outcome {
            Outcome::Error(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    let errors = failed.len();
    let false_accepts = attempts
        .iter()
        .filter(|a| a.kind == Kind::Impostor && a.outcome == Outcome::SignedIn)
        .count();
    line(
        errors == 0 && false_accepts == 0,
        format!(
            "every sign-in answered, no impostor signed in: {errors} errors, {false_accepts} \
             impostors with tokens{}",
            // The first error says what went wrong without the roles' logs.
            failed
                .first()
                .map(|e| format!("; first error: {e}"))
                .unwrap_or_default()
        ),
    );

    // 8. Graceful exits.
    let unclean: Vec<String> = exits
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
            if unclean.is_empty() {
                String::new()
            } else {
                format!(": {}", unclean.join(", "))
            }
        ),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn upload(i: usize) -> Upload {
        Upload {
            user: UserId::parse(format!("u{i}")).unwrap(),
            upload: UploadId::random(),
            photo: 0,
            put_at: Utc::now(),
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
        let attempts = vec![Attempt {
            user: uploads[0].user.clone(),
            kind: Kind::Impostor,
            outcome: Outcome::Rejected,
            sequence: Duration::from_millis(5),
            verify: Some(Duration::from_millis(3)),
            verify_failed: true,
        }];
        let all_pass = |lines: &[Line]| lines.iter().all(|l| l.passed);
        assert!(all_pass(&judge(&evidence, &uploads, &attempts, &[])));

        let mut stray = Evidence {
            faces: evidence.faces.clone(),
            ..Evidence::default()
        };
        stray.faces.insert("f9".into(), "whatever".into());
        let lines = judge(&stray, &uploads, &attempts, &[]);
        assert!(!lines[0].passed && !lines[1].passed && !lines[2].passed);

        evidence.counted_failures = 2;
        evidence.work_queues[0].1 = 1;
        let lines = judge(&evidence, &uploads, &attempts, &[]);
        assert!(lines[0].passed && lines[1].passed);
        assert!(!lines[2].passed && !lines[3].passed && lines[4].passed);
    }
}
