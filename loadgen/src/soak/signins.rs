//! The sign-in flow of the soak: `clients` concurrent clients play Cognito against the
//! verifier's HTTP API, each attempt the whole custom-auth sequence: Define (may this user
//! try?), Create (a one-time challenge and presigned URL), PUT of the selfie, Verify, and
//! Define again with the answer in the session (tokens or not).
//!
//! The mix: `impostor_percent` of the attempts, spread evenly through the run, show another
//! person's face. Impostors aim at a few users only (the "targets", `impostor_target_percent`
//! of the ACTIVE users, at least one); genuine attempts go to every other user. The
//! failure-alert worker locks a user after `FACEGATE_LOCKOUT_THRESHOLD` failures, so the
//! targets get locked early and their later attempts end at the first Define: that refusal is
//! an outcome of its own ("locked out"), and the genuine users are never caught by it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{self, ClientError, DefineDecision as Defined, VerifierClient};
use crate::pipeline::{Photo, variant};
use bytes::Bytes;
use facegate_shared::ids::UserId;

use super::SoakError;

/// Who an attempt claims to be, and whose face it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Genuine,
    Impostor,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Define issued tokens after a correct answer.
    SignedIn,
    /// Verify answered `false`.
    Rejected,
    /// The first Define (or, racing another attempt's lock, Create) refused: the user is
    /// locked (every target is ACTIVE).
    LockedOut,
    /// A request failed or an answer made no sense.
    Error(String),
}

/// One attempt's result.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub user: UserId,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Define to the last Define (or to the refusal).
    pub sequence: Duration,
    /// The Verify call alone, when it was made.
    pub verify: Option<Duration>,
    /// Verify answered `false`: a failure published on `auth-events`.
    pub verify_failed: bool,
}

/// Who signs in, and the selfies they use.
pub struct Plan {
    /// The users impostors aim at.
    pub targets: Vec<UserId>,
    /// Every attempt, in order: (user, selfie).
    attempts: Vec<(UserId, Kind, Bytes)>,
}

/// One selfie per photo of the folder (its mirror image, re-encoded).
fn selfies(photos: &[Photo]) -> Vec<Bytes> {
    photos
        .iter()
        .map(|p| Bytes::from(variant(&p.image, 1)))
        .collect()
}

impl Plan {
    /// Plans `count` attempts over `active` users (user, index of the photo they registered).
    /// A genuine attempt shows another photo of the same person when the folder has one, else
    /// the mirror image of the registered photo; an impostor shows someone else.
    pub fn new(
        photos: &[Photo],
        active: &[(UserId, usize)],
        count: usize,
        impostor_percent: u8,
        impostor_target_percent: u8,
    ) -> Result<Plan, SoakError> {
        if active.is_empty() {
            return Err(SoakError::Run("no ACTIVE user to sign in".into()));
        }
        let selfies = selfies(photos);
        let person = |photo: usize| photos.get(photo).map(|p| p.person.as_str());
        let others = |photo: usize| -> Vec<Bytes> {
            (0..photos.len())
                .filter(|&p| person(p) != person(photo))
                .map(|p| selfies[p].clone())
                .collect()
        };
        let same = |photo: usize| -> Vec<Bytes> {
            let other_photos: Vec<Bytes> = (0..photos.len())
                .filter(|&p| p != photo && person(p) == person(photo))
                .map(|p| selfies[p].clone())
                .collect();
            if other_photos.is_empty() {
                selfies.get(photo).cloned().into_iter().collect()
            } else {
                other_photos
            }
        };
        let target_count = (active.len() * usize::from(impostor_target_percent))
            .div_ceil(100)
            .clamp(1, active.len());
        let (targets, rest) = active.split_at(target_count);
        // With a single ACTIVE user, it is both the target and the genuine user.
        let genuine = if rest.is_empty() { targets } else { rest };
        let share = f64::from(impostor_percent.min(100)) / 100.0;
        let mut attempts = Vec::with_capacity(count);
        let (mut genuine_n, mut impostor_n) = (0, 0);
        for i in 0..count {
            // Impostors spread evenly: attempt i is one when the running share steps up.
            let impostor = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
            let attempt = if impostor {
                let (user, photo) = &targets[impostor_n % targets.len()];
                let pool = others(*photo);
                impostor_n += 1;
                pool.get(impostor_n % pool.len().max(1))
                    .map(|selfie| (user.clone(), Kind::Impostor, selfie.clone()))
            } else {
                let (user, photo) = &genuine[genuine_n % genuine.len()];
                let pool = same(*photo);
                genuine_n += 1;
                pool.get(genuine_n % pool.len().max(1))
                    .map(|selfie| (user.clone(), Kind::Genuine, selfie.clone()))
            };
            attempts.push(attempt.ok_or_else(|| {
                SoakError::Run("the photos folder needs at least two people".into())
            })?);
        }
        Ok(Plan {
            targets: targets.iter().map(|(u, _)| u.clone()).collect(),
            attempts,
        })
    }

    pub fn len(&self) -> usize {
        self.attempts.len()
    }
}

/// Runs every planned attempt with `clients` concurrent clients; `done` counts the finished
/// ones (the fleet's kill is timed on it).
pub async fn run(
    client: VerifierClient,
    plan: Arc<Plan>,
    clients: usize,
    done: Arc<AtomicUsize>,
) -> Result<Vec<Attempt>, SoakError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (client, plan, next, done) = (client.clone(), plan.clone(), next.clone(), done.clone());
        tasks.spawn(async move {
            let mut attempts = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((user, kind, selfie)) = plan.attempts.get(i) else {
                    return attempts;
                };
                let attempt = attempt(&client, user, *kind, selfie.clone()).await;
                if let Outcome::Error(e) = &attempt.outcome {
                    tracing::warn!(%user, error = %e, "sign-in attempt failed");
                }
                attempts.push(attempt);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut attempts = Vec::with_capacity(plan.len());
    while let Some(joined) = tasks.join_next().await {
        attempts.extend(joined.map_err(|e| SoakError::Run(e.to_string()))?);
    }
    Ok(attempts)
}

/// One sign-in, Cognito's way.
async fn attempt(client: &VerifierClient, user: &UserId, kind: Kind, selfie: Bytes) -> Attempt {
    let started = Instant::now();
    let mut verified = None;
    let outcome = steps(client, user, selfie, &mut verified)
        .await
        .unwrap_or_else(|e| Outcome::Error(e.to_string()));
    Attempt {
        user: user.clone(),
        kind,
        outcome,
        sequence: started.elapsed(),
        verify: verified.map(|(took, _)| took),
        verify_failed: verified.is_some_and(|(_, correct)| !correct),
    }
}

/// Define, Create, PUT, Verify, Define; `verified` gets the Verify call's duration and answer.
async fn steps(
    client: &VerifierClient,
    user: &UserId,
    selfie: Bytes,
    verified: &mut Option<(Duration, bool)>,
) -> Result<Outcome, ClientError> {
    match client.define(user.as_str(), &[]).await? {
        Defined::Challenge => {}
        Defined::Fail => return Ok(Outcome::LockedOut),
        Defined::IssueTokens => {
            return Ok(Outcome::Error("tokens issued without an answer".into()));
        }
    }
    let challenge = match client.create(user.as_str(), &[]).await {
        Ok(challenge) => challenge,
        // Another attempt's third wrong answer locked the user between this Define and
        // Create: Create refuses too, as it must.
        Err(e) if e.code().as_deref() == Some("cannot-sign-in") => return Ok(Outcome::LockedOut),
        Err(e) => return Err(e),
    };
    // Each selfie is new to the engine, as every real sign-in's is.
    client
        .put_presigned(&challenge.url, client::fresh_copy(&selfie))
        .await?;
    let verify_started = Instant::now();
    let (correct, _) = client
        .verify(user.as_str(), &challenge, &challenge.key)
        .await?;
    *verified = Some((verify_started.elapsed(), correct));
    let after = client
        .define(user.as_str(), &[challenge.session_entry(correct)])
        .await?;
    Ok(match (correct, after) {
        (true, Defined::IssueTokens) => Outcome::SignedIn,
        (true, other) => Outcome::Error(format!("a correct answer, then Define {other:?}")),
        (false, Defined::IssueTokens) => Outcome::Error("a wrong answer, then tokens".into()),
        (false, _) => Outcome::Rejected,
    })
}

/// The users some attempt found locked at its first Define.
pub fn locked_out(attempts: &[Attempt]) -> BTreeSet<UserId> {
    attempts
        .iter()
        .filter(|a| a.outcome == Outcome::LockedOut)
        .map(|a| a.user.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(person: &str) -> Photo {
        Photo {
            person: person.into(),
            image: image::DynamicImage::new_rgb8(8, 8),
        }
    }

    #[test]
    fn impostors_spread_evenly_and_aim_at_the_targets_only() {
        let photos = [photo("ann"), photo("ann"), photo("bob")];
        let active: Vec<(UserId, usize)> = (0..20)
            .map(|i| (UserId::parse(format!("u{i}")).unwrap(), i % 3))
            .collect();
        let plan = Plan::new(&photos, &active, 100, 20, 10).unwrap();
        assert_eq!(plan.targets.len(), 2);
        let impostors: Vec<_> = plan
            .attempts
            .iter()
            .filter(|a| a.1 == Kind::Impostor)
            .collect();
        assert_eq!(impostors.len(), 20);
        assert!(impostors.iter().all(|a| plan.targets.contains(&a.0)));
        assert!(
            plan.attempts
                .iter()
                .filter(|a| a.1 == Kind::Genuine)
                .all(|a| !plan.targets.contains(&a.0))
        );
        // Every fifth attempt, not the last fifth of the run.
        assert_eq!(plan.attempts[4].1, Kind::Impostor);
        assert_eq!(plan.attempts[3].1, Kind::Genuine);
        assert!(Plan::new(&[photo("ann")], &active[..1], 5, 20, 5).is_err());
    }
}
