//! The pure part of dedup-search's decision: which registration a matched face may make this
//! one a duplicate of, and what a duplicate becomes.

use facegate_shared::registration::{RegistrationRecord, RegistrationState};

/// What a duplicate registration becomes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// REJECTED `duplicate`, its face deleted.
    Reject,
    /// ACTIVE, with `duplicate_of` set for review.
    Flag,
}

/// Whether `theirs` (the registration holding a face that matched ours) makes `ours` a
/// duplicate: it must be another user's, and either ACTIVE or INDEXED and older than ours (of
/// two registrations of one face in flight at once, the older one wins, so both do not lose).
/// Faces of finished registrations (REJECTED, REPLACED, FAILED) are on their way out.
pub fn counts_as_duplicate(ours: &RegistrationRecord, theirs: &RegistrationRecord) -> bool {
    if theirs.user_id == ours.user_id {
        return false;
    }
    match theirs.state {
        RegistrationState::Active => true,
        RegistrationState::Indexed => {
            (&theirs.created_at, &theirs.upload_id) < (&ours.created_at, &ours.upload_id)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use facegate_shared::ids::{UploadId, UserId};

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
        assert!(counts_as_duplicate(&ours, &theirs));
        // Even if it is newer: it signs in already.
        let theirs = registration("alice", "a1", 20, RegistrationState::Active);
        assert!(counts_as_duplicate(&ours, &theirs));
    }

    #[test]
    fn the_users_own_faces_never_count() {
        let ours = registration("alice", "a2", 10, RegistrationState::Indexed);
        let theirs = registration("alice", "a1", 0, RegistrationState::Active);
        assert!(!counts_as_duplicate(&ours, &theirs));
    }

    #[test]
    fn of_two_in_flight_the_older_wins() {
        let older = registration("alice", "a1", 0, RegistrationState::Indexed);
        let newer = registration("mallory", "m1", 5, RegistrationState::Indexed);
        assert!(counts_as_duplicate(&newer, &older));
        assert!(!counts_as_duplicate(&older, &newer));
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
                &registration("alice", "a1", 0, state)
            ));
        }
    }
}
