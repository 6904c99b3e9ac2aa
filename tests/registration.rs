//! The registration pipeline end to end: photos uploaded to S3 under `registrations/` go
//! through the indexer and dedup-search (run in-process here, on the real emulator and the real
//! face engine) and end in the right final state, with the collection holding exactly the
//! faces of ACTIVE registrations.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::eventually;
use common::pipeline::{
    Pacing, Pipeline, blank_png, fixture, fixtures_by_person, two_faces_jpeg, user_of,
};
use facegate_shared::config::Queue;
use facegate_shared::events::{AlertKind, Notification, SecurityAlert};
use facegate_shared::ids::UploadId;
use facegate_shared::quality::QualityIssue;
use facegate_shared::registration::{RegistrationState, RejectionReason};
use facegate_workers::{DedupSettings, IndexerSettings};

/// Time one photo may take through the pipeline on a busy 2-core machine.
const PER_PHOTO: Duration = Duration::from_secs(60);

fn rejected(reasons: &[RejectionReason]) -> RegistrationState {
    RegistrationState::Rejected {
        reasons: reasons.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn photos_become_active_bad_ones_are_rejected_and_duplicates_are_caught() {
    let pipeline = Pipeline::start(Pacing::default()).await;
    let indexer = IndexerSettings {
        // Small enough that the oversized upload stays small.
        max_bytes: 1024 * 1024,
        ..IndexerSettings::default()
    };
    let roles = pipeline.run_roles(indexer.clone(), DedupSettings::default());
    let alerts = pipeline.subscribe_security_alerts().await;

    // Every fixture photo, one user per person. A person's photos go one after the other, and
    // each must be ACTIVE before the next replaces it; people go in parallel.
    let people = fixtures_by_person();
    assert_eq!(people.len(), 8, "the fixtures hold 8 people");
    let registered: Vec<(String, Vec<UploadId>)> =
        futures::future::join_all(people.iter().map(|(person, photos)| {
            let pipeline = &pipeline;
            async move {
                let user = user_of(person);
                let mut uploads = Vec::new();
                for photo in photos {
                    let extension = photo.rsplit_once('.').expect("an extension").1;
                    let upload = pipeline
                        .upload(user.as_str(), fixture(photo), extension)
                        .await;
                    let record = pipeline
                        .final_state(user.as_str(), &upload, PER_PHOTO)
                        .await;
                    assert_eq!(
                        record.state,
                        RegistrationState::Active,
                        "{photo}: {record:?}"
                    );
                    assert!(
                        record.face_id.is_some(),
                        "{photo}: an ACTIVE registration has a face"
                    );
                    uploads.push(upload);
                }
                (user.to_string(), uploads)
            }
        }))
        .await;

    // The newest photo of each person signs in; every older one was REPLACED by the next.
    let mut active_faces = HashMap::new();
    for (user, uploads) in &registered {
        let newest = uploads.last().expect("at least one photo");
        for pair in uploads.windows(2) {
            let older = pipeline
                .registration(user, &pair[0])
                .await
                .expect("a record");
            assert_eq!(
                older.state,
                RegistrationState::Replaced {
                    by_upload_id: pair[1].clone()
                },
                "{user}: {older:?}"
            );
        }
        let active = pipeline.registration(user, newest).await.expect("a record");
        assert_eq!(active.state, RegistrationState::Active);
        assert_eq!(
            pipeline.active_upload(user).await.as_deref(),
            Some(newest.as_str())
        );
        active_faces.insert(active.face_id.clone().expect("a face"), newest.to_string());
    }
    // Replaced faces are gone: the collection is exactly the ACTIVE faces, each under its
    // upload id (a replaced face is deleted right after the transaction; allow it a moment).
    eventually(
        "the collection to hold exactly the ACTIVE faces",
        PER_PHOTO,
        || async {
            let faces = pipeline.faces().await;
            (faces == active_faces).then_some(())
        },
    )
    .await;

    // Bad uploads: each ends REJECTED with its reason, and adds no face.
    let bad_user = "mallory-tests";
    let no_face = pipeline.upload(bad_user, blank_png(), "png").await;
    let two_faces = pipeline.upload(bad_user, two_faces_jpeg(), "jpg").await;
    let not_an_image = pipeline
        .upload(
            bad_user,
            b"this is a text file, not a photo".to_vec(),
            "jpg",
        )
        .await;
    let mut oversized = fixture("obama_1.jpg");
    oversized.resize(indexer.max_bytes as usize + 1, 0);
    let too_large = pipeline.upload(bad_user, oversized, "jpg").await;
    let cases = [
        (
            no_face,
            rejected(&[RejectionReason::Quality(QualityIssue::NoFace)]),
        ),
        (
            two_faces,
            rejected(&[RejectionReason::Quality(QualityIssue::MultipleFaces)]),
        ),
        (not_an_image, rejected(&[RejectionReason::NotAnImage])),
        (too_large, rejected(&[RejectionReason::TooLarge])),
    ];
    for (upload, expected) in &cases {
        let record = pipeline.final_state(bad_user, upload, PER_PHOTO).await;
        assert_eq!(&record.state, expected, "{record:?}");
        assert_eq!(record.face_id, None);
    }
    // A key the pipeline cannot take is recorded for the user it names.
    let bad_key = format!("registrations/{bad_user}/not-a-photo.gif");
    pipeline
        .put(&bad_key, fixture("obama_1.jpg"), "image/gif")
        .await;
    let record = pipeline
        .final_state(
            bad_user,
            &UploadId::parse("not-a-photo").unwrap(),
            PER_PHOTO,
        )
        .await;
    assert_eq!(record.state, rejected(&[RejectionReason::InvalidKey]));
    assert_eq!(record.key, bad_key);

    // Another user registering obama's face (a photo other than obama's active one) is a
    // duplicate: REJECTED, its face deleted, and a security alert.
    let obama = user_of("obama");
    let impostor = "impostor-of-obama";
    let duplicate = pipeline
        .upload(impostor, fixture("obama_1.jpg"), "jpg")
        .await;
    let record = pipeline.final_state(impostor, &duplicate, PER_PHOTO).await;
    assert_eq!(
        record.state,
        rejected(&[RejectionReason::Duplicate]),
        "{record:?}"
    );
    let matched = record
        .duplicate_of
        .clone()
        .expect("duplicate_of is recorded");
    assert_eq!(matched.user_id, obama);
    assert!(matched.similarity >= 95.0, "{matched:?}");
    assert_eq!(pipeline.active_upload(impostor).await, None);
    let alert = eventually("the duplicate's security alert", PER_PHOTO, || async {
        let messages = pipeline.test.receive_once(&alerts, None).await;
        messages.iter().find_map(|m| {
            let note = Notification::<SecurityAlert>::parse(m.body()?).ok()?;
            (note.event.kind == AlertKind::DuplicateRegistration).then_some(note)
        })
    })
    .await;
    assert_eq!(alert.attribute("kind"), Some("duplicate-registration"));
    assert_eq!(
        alert.event.alert_id,
        format!("duplicate-registration:{impostor}:{duplicate}")
    );
    assert_eq!(alert.event.details["matched_user"], obama.as_str());

    // Nothing but the ACTIVE faces is left, nothing is stuck, nothing was dead-lettered. The
    // duplicate's face goes after its alert (dedup's last round), so wait for it to go.
    let left = eventually(
        "only the ACTIVE faces in the collection",
        PER_PHOTO,
        || async {
            let faces = pipeline.faces().await;
            (faces == active_faces).then_some(faces)
        },
    )
    .await;
    assert_eq!(left, active_faces);
    pipeline.drained(PER_PHOTO).await;
    for queue in [Queue::Uploads, Queue::Dedup] {
        assert_eq!(
            pipeline.depth(pipeline.stack().dlq_url(queue)).await,
            (0, 0),
            "{queue:?} dead-letter queue"
        );
    }
    let finals: HashSet<&str> = pipeline
        .all_registrations()
        .await
        .iter()
        .map(|r| {
            assert!(r.state.is_final(), "{r:?}");
            r.state.code()
        })
        .collect();
    assert_eq!(finals, HashSet::from(["ACTIVE", "REPLACED", "REJECTED"]));
    eprintln!(
        "{} registrations; {} ACTIVE faces; duplicate alert {}",
        pipeline.all_registrations().await.len(),
        active_faces.len(),
        alert.event.summary
    );
    roles.stop().await;
}

/// Issue 13's race, end to end. The owner is ACTIVE; while dedup-search is down, someone
/// uploads a photo of the owner's face, then the owner a new photo of themselves. When
/// dedup-search comes back and meets both INDEXED, the owner's new photo becomes ACTIVE (the
/// owner held the face first) and the copy is the duplicate, alerted against the copier.
/// (Before the fix the owner's photo was REJECTED as the copier's duplicate whenever dedup
/// decided it while the copy was still INDEXED; `decision.rs` reproduces that order exactly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_keeps_their_face_against_a_copy_uploaded_while_dedup_was_down() {
    let pipeline = Pipeline::start(Pacing::default()).await;
    let owner = user_of("obama");
    let roles = pipeline.run_roles(IndexerSettings::default(), DedupSettings::default());
    let first = pipeline
        .upload(owner.as_str(), fixture("obama_1.jpg"), "jpg")
        .await;
    let record = pipeline
        .final_state(owner.as_str(), &first, PER_PHOTO)
        .await;
    assert_eq!(record.state, RegistrationState::Active, "{record:?}");
    roles.stop().await;

    let indexer = pipeline.run_indexer(IndexerSettings::default());
    let copier = "copier-of-obama";
    let indexed = |user: String, upload: UploadId| {
        let pipeline = &pipeline;
        async move {
            eventually(&format!("{user}/{upload} INDEXED"), PER_PHOTO, || async {
                let record = pipeline.registration(&user, &upload).await?;
                (record.state == RegistrationState::Indexed).then_some(())
            })
            .await;
            upload
        }
    };
    let copy = pipeline.upload(copier, fixture("obama_2.jpg"), "jpg").await;
    let copy = indexed(copier.to_string(), copy).await;
    let renewed = pipeline
        .upload(owner.as_str(), fixture("obama_3.jpg"), "jpg")
        .await;
    let renewed = indexed(owner.to_string(), renewed).await;
    indexer.stop().await;

    let dedup = pipeline.run_dedup(DedupSettings::default());
    let record = pipeline
        .final_state(owner.as_str(), &renewed, PER_PHOTO)
        .await;
    assert_eq!(
        record.state,
        RegistrationState::Active,
        "the owner's new photo: {record:?}"
    );
    let record = pipeline.final_state(copier, &copy, PER_PHOTO).await;
    assert_eq!(
        record.state,
        rejected(&[RejectionReason::Duplicate]),
        "{record:?}"
    );
    assert_eq!(
        record.duplicate_of.map(|d| d.user_id),
        Some(owner.clone()),
        "the copy is the owner's duplicate"
    );
    let first = pipeline
        .registration(owner.as_str(), &first)
        .await
        .expect("a record");
    assert_eq!(
        first.state,
        RegistrationState::Replaced {
            by_upload_id: renewed.clone()
        }
    );
    assert_eq!(
        pipeline.active_upload(owner.as_str()).await.as_deref(),
        Some(renewed.as_str())
    );
    dedup.stop().await;
}
