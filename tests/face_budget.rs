//! One face-call budget for the whole stack (`FACEGATE_FACE_BUDGET_PER_SECOND`): three
//! `facegate indexer` processes, each allowed the whole budget on its own, register photos at
//! once; the engine's own count of the calls arriving in each second stays within the budget
//! (plus one: a call taken at the very end of a second may arrive in the next).
//!
//! Without the shared budget the three would send up to three times as much (each process's
//! own token bucket lets it spend the whole budget), which is what this test would catch.

mod common;

use std::time::Duration;

use common::eventually;
use common::pipeline::{Pacing, Pipeline, fixture, variant};
use facegate_shared::registration::RegistrationState;

/// Calls per second for the stack, and for each process on its own.
const BUDGET: u32 = 3;
const INDEXERS: usize = 3;
const PHOTOS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_indexers_spend_one_budget_by_the_engines_own_count() {
    let budget = BUDGET.to_string();
    let pipeline = Pipeline::start_with_env(
        Pacing::default(),
        &[
            ("FACEGATE_FACE_BUDGET_PER_SECOND", &budget),
            ("FACEGATE_FACE_CALLS_PER_SECOND", &budget),
            ("FACEGATE_FACE_CALLS_BURST", &budget),
        ],
    )
    .await;
    let logs = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("face-budget-{}", pipeline.test.prefix));
    std::fs::create_dir_all(&logs).expect("the log folder");
    let indexers: Vec<_> = (0..INDEXERS)
        .map(|n| pipeline.spawn_role("indexer", &logs.join(format!("indexer-{n}.log"))))
        .collect();

    // Photos of four people, each a different upload, each for a user of its own: every
    // photo costs the indexer its face calls and stays INDEXED (no dedup-search runs).
    let photos = [
        "obama_1.jpg",
        "biden_1.jpg",
        "rose_leslie_1.jpg",
        "kit_harington_1.jpg",
    ];
    let decoded: Vec<_> = photos
        .iter()
        .map(|name| image::load_from_memory(&fixture(name)).expect("a fixture decodes"))
        .collect();
    let mut uploads = Vec::new();
    for n in 0..PHOTOS {
        let user = format!("budget-user-{n}");
        let bytes = variant(&decoded[n % decoded.len()], n);
        uploads.push((user.clone(), pipeline.upload(&user, bytes, "jpg").await));
    }
    let pipeline_ref = &pipeline;
    eventually(
        "every photo INDEXED",
        Duration::from_secs(240),
        || async move {
            let all = pipeline_ref.all_registrations().await;
            let indexed = all
                .iter()
                .filter(|r| r.state == RegistrationState::Indexed)
                .count();
            let stuck: Vec<_> = all
                .iter()
                .filter(|r| r.state.is_final())
                .map(|r| format!("{}: {:?}", r.user_id, r.state))
                .collect();
            assert!(stuck.is_empty(), "photos that did not index: {stuck:?}");
            (indexed == PHOTOS).then_some(())
        },
    )
    .await;
    drop(indexers);

    let seconds = pipeline.engine.calls_per_second();
    let total: u32 = seconds.iter().map(|(_, calls)| calls).sum();
    let busiest = seconds.iter().map(|(_, calls)| *calls).max().unwrap_or(0);
    println!("engine calls per second: {seconds:?} (total {total})");
    assert!(
        total as usize >= 2 * PHOTOS,
        "every photo costs at least DetectFaces and IndexFaces: {total} calls"
    );
    assert!(
        busiest <= BUDGET + 1,
        "the engine saw {busiest} calls in one second against a stack budget of {BUDGET}: \
         {seconds:?}"
    );
    for n in 0..INDEXERS {
        let log =
            std::fs::read_to_string(logs.join(format!("indexer-{n}.log"))).unwrap_or_default();
        assert!(
            log.contains("face calls share the stack's budget"),
            "indexer {n} did not take the stack budget:\n{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&logs);
}
