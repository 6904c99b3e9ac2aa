//! The registration pipeline under faults, with the real `facegate indexer` and `facegate dedup`
//! processes: SIGKILLed at random moments while 200+ registrations flow, and SIGTERMed in the
//! middle of a busy run. Afterwards the audit: every registration in one final state, the
//! collection holding exactly one face per ACTIVE registration and nothing else, nothing left in
//! flight, and every message that could never succeed in the dead-letter queue.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::eventually;
use common::pipeline::{
    Pacing, Pipeline, blank_png, fixture, fixtures_by_person, user_of, variant,
};
use facegate_shared::config::Queue;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::registration::{RegistrationRecord, RegistrationState, RejectionReason};
use tokio::process::Child;

/// Registrations per person in the SIGKILL run: 8 people, so 200 in all.
const PER_PERSON: usize = 25;

/// One registration the test made, and what it should end as.
#[derive(Clone, Debug)]
struct Upload {
    user: UserId,
    upload: UploadId,
    expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// ACTIVE or REPLACED: a good photo of its user.
    Accepted,
    /// REJECTED no-face.
    NoFace,
    /// FAILED, its message in the dead-letter queue.
    Poison,
}

fn log_path(pipeline: &Pipeline, role: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{role}.log", pipeline.test.prefix))
}

/// The photos of the run: `per_person` variants of each person's fixtures, decoded once.
async fn variants(per_person: usize) -> Vec<(UserId, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut photos = Vec::new();
        for (person, names) in fixtures_by_person() {
            let decoded: Vec<_> = names
                .iter()
                .map(|n| image::load_from_memory(&fixture(n)).expect("a fixture decodes"))
                .collect();
            for n in 0..per_person {
                photos.push((user_of(&person), variant(&decoded[n % decoded.len()], n)));
            }
        }
        photos
    })
    .await
    .expect("generating the photos")
}

/// An S3 event for an object in a bucket that does not exist: HeadObject can never succeed,
/// so the indexer retries until the last delivery, marks the registration FAILED and the
/// message goes to the dead-letter queue.
fn poison_event(pipeline: &Pipeline, user: &UserId, upload: &UploadId) -> String {
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "poison", "x-amz-id-2": "poison"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "facegate-registrations",
                "bucket": {
                    "name": format!("{}-no-such-bucket", pipeline.test.prefix),
                    "ownerIdentity": {"principalId": "EXAMPLE"},
                    "arn": format!("arn:aws:s3:::{}-no-such-bucket", pipeline.test.prefix)
                },
                "object": {"key": format!("registrations/{user}/{upload}.jpg"), "size": 1000, "eTag": "0", "sequencer": "0"}
            }
        }]
    })
    .to_string()
}

/// Checks the end state of a run: every registration final as expected, one ACTIVE (the
/// newest accepted) per user and the users item pointing at it, the collection exactly the
/// ACTIVE faces, the work queues empty, the poison messages (and only they) dead-lettered.
async fn audit(pipeline: &Pipeline, uploads: &[Upload], within: Duration) {
    for upload in uploads {
        pipeline
            .final_state(upload.user.as_str(), &upload.upload, within)
            .await;
    }
    // An ACTIVE registration may still become REPLACED while others finish: read the records
    // again once nothing is in flight any more.
    pipeline.drained(within).await;
    let mut records: Vec<(Upload, RegistrationRecord)> = Vec::new();
    for upload in uploads {
        let record = pipeline
            .registration(upload.user.as_str(), &upload.upload)
            .await
            .expect("a record");
        records.push((upload.clone(), record));
    }
    let mut active_faces = HashMap::new();
    let mut by_user: HashMap<&UserId, Vec<&RegistrationRecord>> = HashMap::new();
    for (upload, record) in &records {
        match upload.expect {
            Expect::Accepted => {
                assert!(
                    matches!(
                        record.state,
                        RegistrationState::Active | RegistrationState::Replaced { .. }
                    ),
                    "a good photo ended {record:?}"
                );
                by_user.entry(&upload.user).or_default().push(record);
            }
            Expect::NoFace => assert!(
                matches!(&record.state, RegistrationState::Rejected { reasons } if reasons.contains(&RejectionReason::Quality(facegate_shared::quality::QualityIssue::NoFace))),
                "{record:?}"
            ),
            Expect::Poison => assert!(
                matches!(record.state, RegistrationState::Failed { .. }),
                "{record:?}"
            ),
        }
    }
    for (user, records) in &by_user {
        let active: Vec<_> = records
            .iter()
            .filter(|r| r.state == RegistrationState::Active)
            .collect();
        assert_eq!(active.len(), 1, "{user}: exactly one ACTIVE registration");
        let active = active[0];
        let newest = records
            .iter()
            .max_by_key(|r| (r.created_at, r.upload_id.clone()))
            .expect("registrations");
        assert_eq!(
            active.upload_id, newest.upload_id,
            "{user}: the newest upload signs in"
        );
        assert_eq!(
            pipeline.active_upload(user.as_str()).await.as_deref(),
            Some(active.upload_id.as_str()),
            "{user}: the users item points at the ACTIVE registration"
        );
        active_faces.insert(
            active
                .face_id
                .clone()
                .expect("an ACTIVE registration has a face"),
            active.upload_id.to_string(),
        );
    }
    // Every registration in the table is one of ours and final (none half-made by a crash).
    let all = pipeline.all_registrations().await;
    assert_eq!(all.len(), uploads.len(), "one record per registration");
    for record in &all {
        assert!(record.state.is_final(), "{record:?}");
    }
    let faces = pipeline.faces().await;
    assert_eq!(
        faces, active_faces,
        "the collection holds exactly one face per ACTIVE registration"
    );
    let poisons = uploads
        .iter()
        .filter(|u| u.expect == Expect::Poison)
        .count() as u64;
    eventually("the poison messages in the uploads DLQ", within, || async {
        let (waiting, in_flight) = pipeline
            .depth(pipeline.stack().dlq_url(Queue::Uploads))
            .await;
        (waiting + in_flight == poisons).then_some(())
    })
    .await;
    assert_eq!(
        pipeline.depth(pipeline.stack().dlq_url(Queue::Dedup)).await,
        (0, 0)
    );
}

/// Uploads every photo, a few at a time, as fast as the emulator takes them.
async fn upload_all(
    pipeline: Arc<Pipeline>,
    photos: Vec<(UserId, Vec<u8>)>,
    pause: Duration,
) -> Vec<Upload> {
    let mut uploads = Vec::new();
    for (user, bytes) in photos {
        let upload = pipeline.upload(user.as_str(), bytes, "jpg").await;
        uploads.push(Upload {
            user,
            upload,
            expect: Expect::Accepted,
        });
        tokio::time::sleep(pause).await;
    }
    uploads
}

async fn sigterm(child: &Child) {
    let pid = child.id().expect("a running child");
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_and_leaves_no_stray_face() {
    let pacing = Pacing {
        // Several kills may hit one message; only the poison should ever reach the DLQ.
        max_receive_count: 8,
        ..Pacing::default()
    };
    let pipeline = Arc::new(Pipeline::start(pacing).await);
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    eprintln!(
        "chaos seed {seed}; logs in {}",
        log_path(&pipeline, "*").display()
    );

    let mut photos = variants(PER_PERSON).await;
    rng.shuffle(&mut photos);
    let mut indexer = pipeline.spawn_role("indexer", &log_path(&pipeline, "indexer"));
    let mut dedup = pipeline.spawn_role("dedup", &log_path(&pipeline, "dedup"));
    let uploader = tokio::spawn(upload_all(
        pipeline.clone(),
        photos,
        Duration::from_millis(40),
    ));

    // What can never succeed: two events for a bucket that does not exist, two blank photos.
    let mut extra = Vec::new();
    for n in 0..2 {
        let user = UserId::parse(format!("poison-{n}")).unwrap();
        let upload = UploadId::random();
        pipeline
            .stack()
            .clients
            .sqs
            .send_message()
            .queue_url(pipeline.stack().queue_url(Queue::Uploads))
            .message_body(poison_event(&pipeline, &user, &upload))
            .send()
            .await
            .expect("SendMessage");
        extra.push(Upload {
            user,
            upload,
            expect: Expect::Poison,
        });
        let user = UserId::parse(format!("blank-{n}")).unwrap();
        let upload = pipeline.upload(user.as_str(), blank_png(), "png").await;
        extra.push(Upload {
            user,
            upload,
            expect: Expect::NoFace,
        });
    }

    // Kill the roles at random moments while the run is busy, and start them again.
    let started = Instant::now();
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(rng.u64(1_500..5_000))).await;
        let (kill_indexer, kill_dedup) = match round % 3 {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        if kill_indexer {
            indexer.kill().await.expect("SIGKILL the indexer");
        }
        if kill_dedup {
            dedup.kill().await.expect("SIGKILL dedup");
        }
        eprintln!(
            "round {round} at {:?}: killed indexer={kill_indexer} dedup={kill_dedup}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(rng.u64(0..1_000))).await;
        if kill_indexer {
            indexer = pipeline.spawn_role("indexer", &log_path(&pipeline, "indexer"));
        }
        if kill_dedup {
            dedup = pipeline.spawn_role("dedup", &log_path(&pipeline, "dedup"));
        }
    }
    let mut uploads = uploader.await.expect("the uploads");
    assert_eq!(uploads.len(), 8 * PER_PERSON);
    uploads.extend(extra);
    audit(&pipeline, &uploads, Duration::from_secs(300)).await;
    eprintln!(
        "audited {} registrations after {:?}",
        uploads.len(),
        started.elapsed()
    );
    indexer.kill().await.ok();
    dedup.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_in_a_busy_run_exits_0_in_time_and_loses_nothing() {
    let pacing = Pacing::default();
    let drain = Duration::from_secs(pacing.drain_secs);
    let pipeline = Arc::new(Pipeline::start(pacing).await);
    // The photos are all waiting before the roles start, so the run is busy when SIGTERM comes.
    let uploads = upload_all(pipeline.clone(), variants(3).await, Duration::ZERO).await;
    let indexer = pipeline.spawn_role("indexer", &log_path(&pipeline, "indexer"));
    let dedup = pipeline.spawn_role("dedup", &log_path(&pipeline, "dedup"));

    let unfinished = eventually(
        "the run to be under way",
        Duration::from_secs(120),
        || async {
            let all = pipeline.all_registrations().await;
            let indexed = all
                .iter()
                .filter(|r| r.state != RegistrationState::Pending)
                .count();
            (indexed >= 3)
                .then(|| uploads.len() - all.iter().filter(|r| r.state.is_final()).count())
        },
    )
    .await;
    assert!(
        unfinished > 0,
        "the run was over before SIGTERM: the test proves nothing"
    );

    let sent = Instant::now();
    sigterm(&indexer).await;
    sigterm(&dedup).await;
    for (name, child) in [("indexer", indexer), ("dedup", dedup)] {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{name} still running 30 s after SIGTERM"))
            .expect("wait for the role");
        let elapsed = sent.elapsed();
        assert!(
            status.status.success(),
            "{name} exited with {} (log: {})",
            status.status,
            log_path(&pipeline, name).display()
        );
        // The drain deadline plus the moment a long poll and a release take.
        assert!(
            elapsed <= drain + Duration::from_secs(5),
            "{name} took {elapsed:?} to stop"
        );
    }
    eprintln!(
        "both roles stopped {:?} after SIGTERM; {unfinished} registrations were unfinished",
        sent.elapsed()
    );

    // Nothing was lost: started again, the roles finish every registration.
    let mut indexer = pipeline.spawn_role("indexer", &log_path(&pipeline, "indexer"));
    let mut dedup = pipeline.spawn_role("dedup", &log_path(&pipeline, "dedup"));
    audit(&pipeline, &uploads, Duration::from_secs(180)).await;
    indexer.kill().await.ok();
    dedup.kill().await.ok();
}
