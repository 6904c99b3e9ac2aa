//! The pure part of dedup-search's decision: which registration a matched face may make this
//! one a duplicate of, and what a duplicate becomes.
//!
//! A face belongs to whoever held it first. A user's claim dates from their earliest
//! registration still holding a matching face (ACTIVE, or INDEXED in flight), not from the
//! registration being decided: otherwise a user re-registering while someone else's copy of
//! their face waits INDEXED (dedup-search down, say) would lose their own face to the copier.

use chrono::{DateTime, Utc};
use facegate_shared::ids::UploadId;
use facegate_shared::registration::{RegistrationRecord, RegistrationState};

/// What a duplicate registration becomes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// REJECTED `duplicate`, its face deleted.
    Reject,
    /// ACTIVE, with `duplicate_of` set for review.
    Flag,
}

/// Since when a user holds a face: the moment of a registration, ties broken by upload id so
/// that of two claims one is always first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claim<'r> {
    created_at: &'r DateTime<Utc>,
    upload_id: &'r UploadId,
}

impl<'r> Claim<'r> {
    pub fn of(record: &'r RegistrationRecord) -> Self {
        Self {
            created_at: &record.created_at,
            upload_id: &record.upload_id,
        }
    }
}

/// Whether a registration's face holds a claim: it signs in, or is on its way to.
fn holds_its_face(record: &RegistrationRecord) -> bool {
    matches!(
        record.state,
        RegistrationState::Active | RegistrationState::Indexed
    )
}

/// The claim of `ours`'s user on the face: the earliest of `ours` and of the user's own
/// registrations whose faces matched it too and still hold them.
pub fn claim_of<'r>(
    ours: &'r RegistrationRecord,
    own_matches: impl IntoIterator<Item = &'r RegistrationRecord>,
) -> Claim<'r> {
    own_matches
        .into_iter()
        .filter(|own| own.user_id == ours.user_id && holds_its_face(own))
        .map(Claim::of)
        .fold(Claim::of(ours), Ord::min)
}

/// Whether `theirs` (the registration holding a face that matched ours) makes `ours` a
/// duplicate: it must be another user's, and either ACTIVE or INDEXED with a claim older
/// than ours (`claim`, from [`claim_of`]): of two registrations of one face in flight at
/// once, the older claim wins, so both do not lose. Faces of finished registrations
/// (REJECTED, REPLACED, FAILED) are on their way out.
pub fn counts_as_duplicate(
    ours: &RegistrationRecord,
    claim: Claim<'_>,
    theirs: &RegistrationRecord,
) -> bool {
    if theirs.user_id == ours.user_id {
        return false;
    }
    match theirs.state {
        RegistrationState::Active => true,
        RegistrationState::Indexed => Claim::of(theirs) < claim,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_shared::ids::UserId;

    fn registration(
        user: &str,
        upload: &str,
        seconds: i64,
        state: RegistrationState,
    ) -> RegistrationRecord {
        let t0: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        RegistrationRecord {
            state,
            ..RegistrationRecord::pending(
                UserId::parse(user).unwrap(),
                UploadId::parse(upload).unwrap(),
                "b".into(),
                "k".into(),
                t0 + chrono::Duration::seconds(seconds),
            )
        }
    }

    #[test]
    fn another_users_active_face_is_a_duplicate() {
        let ours = registration("mallory", "m1", 10, RegistrationState::Indexed);
        let theirs = registration("alice", "a1", 0, RegistrationState::Active);
        assert!(counts_as_duplicate(&ours, Claim::of(&ours), &theirs));
        // Even if it is newer: it signs in already.
        let theirs = registration("alice", "a1", 20, RegistrationState::Active);
        assert!(counts_as_duplicate(&ours, Claim::of(&ours), &theirs));
    }

    #[test]
    fn the_users_own_faces_never_count() {
        let ours = registration("alice", "a2", 10, RegistrationState::Indexed);
        let theirs = registration("alice", "a1", 0, RegistrationState::Active);
        assert!(!counts_as_duplicate(&ours, Claim::of(&ours), &theirs));
    }

    #[test]
    fn of_two_in_flight_the_older_wins() {
        let older = registration("alice", "a1", 0, RegistrationState::Indexed);
        let newer = registration("mallory", "m1", 5, RegistrationState::Indexed);
        assert!(counts_as_duplicate(&newer, Claim::of(&newer), &older));
        assert!(!counts_as_duplicate(&older, Claim::of(&older), &newer));
    }

    /// Issue 13's race: alice is ACTIVE; while dedup-search is down, mallory uploads alice's
    /// face, then alice a new photo. Alice's new photo is not mallory's duplicate (her claim
    /// dates from her ACTIVE registration); mallory's is alice's.
    #[test]
    fn the_owner_who_held_the_face_first_wins_a_reregistration_race() {
        let alice_active = registration("alice", "a1", 0, RegistrationState::Active);
        let mallory = registration("mallory", "m1", 10, RegistrationState::Indexed);
        let alice_new = registration("alice", "a2", 20, RegistrationState::Indexed);
        let claim = claim_of(&alice_new, [&alice_active]);
        assert_eq!(claim, Claim::of(&alice_active));
        assert!(!counts_as_duplicate(&alice_new, claim, &mallory));
        let claim = claim_of(&mallory, []);
        assert!(counts_as_duplicate(&mallory, claim, &alice_active));
        // And once alice's new photo signs in (her first one REPLACED), it is what mallory's
        // copy matches.
        let alice_new = RegistrationRecord {
            state: RegistrationState::Active,
            ..alice_new
        };
        assert!(counts_as_duplicate(&mallory, claim, &alice_new));
    }

    #[test]
    fn only_the_users_own_faces_that_still_hold_them_date_a_claim() {
        let ours = registration("alice", "a2", 20, RegistrationState::Indexed);
        let rejected = RegistrationState::Rejected { reasons: vec![] };
        let finished = registration("alice", "a1", 0, rejected);
        let someone_else = registration("mallory", "m1", 0, RegistrationState::Active);
        assert_eq!(
            claim_of(&ours, [&finished, &someone_else]),
            Claim::of(&ours)
        );
    }

    #[test]
    fn finished_registrations_do_not_count() {
        let ours = registration("mallory", "m1", 10, RegistrationState::Indexed);
        for state in [
            RegistrationState::Pending,
            RegistrationState::Replaced {
                by_upload_id: UploadId::parse("a2").unwrap(),
            },
            RegistrationState::Failed { detail: "x".into() },
        ] {
            assert!(!counts_as_duplicate(
                &ours,
                Claim::of(&ours),
                &registration("alice", "a1", 0, state)
            ));
        }
    }
}
