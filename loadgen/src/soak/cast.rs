//! Who is who in the soak, fixed before it starts: user `i` registers photo `i mod P` of the
//! photos folder (as variant `i / P`: every upload a different file, so a thousand users are
//! a thousand registrations of a dozen people), and plays one part.
//!
//! - **Targets**: the first `impostor_target_percent` of the users (at least one). Impostors
//!   aim at them only, and the failure-alert worker locks them.
//! - **Re-registering**: `reregister_percent` of the other users, spread evenly. Once their
//!   first registration is ACTIVE they register a new photo of themselves; dedup-search makes
//!   the new one ACTIVE, the old one REPLACED, and deletes the old face (the soak's
//!   DeleteFaces). They do not sign in, so no sign-in races their face's replacement.
//! - **Genuine**: everyone else; genuine sign-ins go to them only, so no impostor's lockout
//!   ever catches a genuine attempt.
//!
//! Independently, `pool_percent` of the users, spread evenly, sign up in the stack's Cognito
//! user pool and sign in through it (InitiateAuth, the trigger Lambda); the others sign in
//! through the verifier's HTTP trigger routes, as a forwarding Lambda would.

use facegate_shared::ids::UserId;

use super::SoakError;

/// A user's part in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Target,
    Reregistering,
    Genuine,
}

/// One user of the run.
#[derive(Clone, Debug)]
pub struct Person {
    pub user: UserId,
    /// Index of the photo they register, in the photos folder.
    pub photo: usize,
    /// Which variant of the photo their first registration is.
    pub variant: usize,
    pub part: Part,
    /// Signs up in the user pool and signs in through it.
    pub through_pool: bool,
}

/// What a re-registration uploads: a variant no first registration uses.
pub const REREGISTRATION_VARIANT: usize = 100_000;

/// Every user of the run, by index.
#[derive(Clone, Debug)]
pub struct Cast {
    pub people: Vec<Person>,
}

/// Whether item `i` of a run is one of an evenly spread `percent` share.
pub fn in_share(i: usize, percent: u8) -> bool {
    let share = f64::from(percent.min(100)) / 100.0;
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

impl Cast {
    pub fn new(
        registrations: usize,
        photos: usize,
        impostor_target_percent: u8,
        reregister_percent: u8,
        pool_percent: u8,
    ) -> Result<Self, SoakError> {
        if photos == 0 {
            return Err(SoakError::Run("no photos to register".into()));
        }
        let targets = (registrations * usize::from(impostor_target_percent))
            .div_ceil(100)
            .clamp(1, registrations.max(1));
        let people = (0..registrations)
            .map(|i| {
                let part = if i < targets {
                    Part::Target
                } else if in_share(i - targets, reregister_percent) {
                    Part::Reregistering
                } else {
                    Part::Genuine
                };
                Ok(Person {
                    user: UserId::parse(format!("soak-{i:06}"))
                        .map_err(|e| SoakError::Run(e.to_string()))?,
                    photo: i % photos,
                    variant: i / photos,
                    part,
                    through_pool: in_share(i, pool_percent),
                })
            })
            .collect::<Result<Vec<_>, SoakError>>()?;
        Ok(Cast { people })
    }

    pub fn count(&self, part: Part) -> usize {
        self.people.iter().filter(|p| p.part == part).count()
    }

    /// The registrations the run makes: one per user, and a second per re-registering user.
    pub fn registrations(&self) -> usize {
        self.people.len() + self.count(Part::Reregistering)
    }

    /// The person whose user id is `user`.
    pub fn person(&self, user: &UserId) -> Option<(usize, &Person)> {
        // Ids are `soak-<index>`.
        let index: usize = user.as_str().strip_prefix("soak-")?.parse().ok()?;
        self.people
            .get(index)
            .filter(|p| p.user == *user)
            .map(|p| (index, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_channels_are_spread_as_asked() {
        let cast = Cast::new(1000, 13, 5, 5, 50).unwrap();
        assert_eq!(cast.count(Part::Target), 50);
        assert_eq!(cast.count(Part::Reregistering), 47);
        assert_eq!(cast.count(Part::Genuine), 903);
        assert_eq!(cast.registrations(), 1047);
        assert_eq!(cast.people.iter().filter(|p| p.through_pool).count(), 500);
        // Targets come first, and both channels have targets and genuine users.
        assert!(cast.people[..50].iter().all(|p| p.part == Part::Target));
        for part in [Part::Target, Part::Genuine] {
            for pool in [true, false] {
                assert!(
                    cast.people
                        .iter()
                        .any(|p| p.part == part && p.through_pool == pool)
                );
            }
        }
        let (i, person) = cast.person(&cast.people[123].user).unwrap();
        assert_eq!((i, person.photo, person.variant), (123, 123 % 13, 123 / 13));
        assert!(
            cast.person(&UserId::parse("soak-999999").unwrap())
                .is_none()
        );
    }

    #[test]
    fn a_tiny_run_still_has_a_target() {
        let cast = Cast::new(3, 13, 5, 0, 100).unwrap();
        assert_eq!(cast.count(Part::Target), 1);
        assert_eq!(cast.count(Part::Genuine), 2);
        assert!(cast.people.iter().all(|p| p.through_pool));
    }
}
