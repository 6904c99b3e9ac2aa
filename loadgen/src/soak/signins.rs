//! The sign-in flow of the soak: `clients` concurrent clients sign in while the registrations
//! are still flowing, each attempt to a user the roster shows ACTIVE, by one of two doors:
//!
//! - **the user pool** (users of the [`Cast`] marked `through_pool`): Cognito's own API as an
//!   app uses it ([`CognitoApp`]): `InitiateAuth` CUSTOM_AUTH (the pool runs Define and Create
//!   in the trigger Lambda), the PUT of the selfie, `RespondToAuthChallenge` (Verify and
//!   Define). Tokens are checked against the pool's JWKS and must name the user;
//! - **the verifier's HTTP trigger routes** (everyone else), as a thin forwarding Lambda
//!   calls them: Define, Create, PUT, Verify, Define with the answer in the session.
//!
//! The mix: `impostor_percent` of the attempts, spread evenly, show another person's face to
//! one of the cast's targets; the others show the user's own face (another photo of the same
//! person when the folder has one, else a mirror image). Each selfie is new bytes.
//!
//! A client retries as a real one does: a sign-in whose server died (no answer, a 5xx, the
//! Lambda failing under Cognito, the emulator restarting) is started again from the beginning,
//! for as long as [`Patience::call`]; an answer, even a refusal, ends the attempt. A refused
//! face is not answered again (one answer per attempt keeps the counts plain).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use facegate_shared::ids::{ChallengeId, UserId};
use facegate_shared::objects::SigninUpload;
use facegate_verifier::access_token::AccessTokens;

use super::SoakError;
use super::cast::{Cast, Part, in_share};
use super::registrations::Roster;
use super::retry::{Patience, pause};
use crate::client::{self, ClientError, DefineDecision as Defined, VerifierClient};
use crate::cognito_app::{Answered, AppError, CognitoApp};
use crate::pipeline::{Photo, variant};

/// Who an attempt claims to be, and whose face it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Genuine,
    Impostor,
}

/// The door an attempt came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The user pool and its trigger Lambda.
    Pool,
    /// The verifier's `/cognito/*` routes.
    Http,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Tokens issued after a correct answer (through the pool: tokens that check, for this
    /// user).
    SignedIn,
    /// Verify answered `false`.
    Rejected,
    /// The first Define (or, racing another attempt's lock, Create) refused: the user is
    /// locked (every target is ACTIVE).
    LockedOut,
    /// A request failed for good, or an answer made no sense.
    Error(String),
}

/// One attempt's result.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub user: UserId,
    pub kind: Kind,
    pub channel: Channel,
    pub outcome: Outcome,
    /// The last start to the end (the whole Cognito sequence).
    pub sequence: Duration,
    /// The Verify call alone, when it was made over HTTP (through the pool it is inside
    /// `RespondToAuthChallenge`).
    pub verify: Option<Duration>,
    /// Verify answered `false` (seen by the client).
    pub verify_failed: bool,
    /// Times the attempt was started again because a server died under it.
    pub restarts: u32,
    /// The challenge its last start was issued, when it got that far.
    pub challenge: Option<ChallengeId>,
    /// When it ended.
    pub ended: Instant,
}

/// What one run of an attempt's steps learnt of its challenge and of Verify.
#[derive(Clone, Debug, Default)]
struct Verified {
    /// The challenge issued (from its key, `signin/<user>/<challenge_id>.jpg`).
    challenge: Option<ChallengeId>,
    /// The Verify call alone (HTTP door only).
    took: Option<Duration>,
    /// Its answer, when the client learnt it.
    correct: Option<bool>,
}

/// The challenge id in a challenge's key.
fn challenge_of(key: &str) -> Option<ChallengeId> {
    SigninUpload::parse_key(key).ok().map(|u| u.challenge_id)
}

/// Why one run of an attempt's steps did not end with an answer.
enum Interrupted {
    /// The server died or was unreachable: start again.
    Retry(String),
    /// Anything else: the attempt ends in [`Outcome::Error`].
    Fatal(String),
}

impl From<ClientError> for Interrupted {
    fn from(e: ClientError) -> Self {
        let retry = match &e {
            ClientError::Unreachable { .. }
            | ClientError::Timeout { .. }
            | ClientError::Body { .. } => true,
            ClientError::Status { status, .. } => status.is_server_error(),
            ClientError::Build { .. } | ClientError::Unexpected { .. } => false,
        };
        if retry {
            Interrupted::Retry(e.to_string())
        } else {
            Interrupted::Fatal(e.to_string())
        }
    }
}

impl From<AppError> for Interrupted {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Upload(e) => e.into(),
            // An answer of Cognito's about the user or the request is final; anything else
            // (no answer, the trigger Lambda failing, the service erring) is worth another go.
            AppError::Cognito { ref code, .. }
                if [
                    "NotAuthorizedException",
                    "UserNotFoundException",
                    "InvalidParameterException",
                    "UserNotConfirmedException",
                ]
                .contains(&code.as_str()) =>
            {
                Interrupted::Fatal(e.to_string())
            }
            AppError::Cognito { .. } => Interrupted::Retry(e.to_string()),
            AppError::Unexpected { .. } | AppError::Srp(_) => Interrupted::Fatal(e.to_string()),
        }
    }
}

/// The selfies of the run, per registered photo.
struct Selfies {
    /// Photos of the same person (the mirror image of the photo itself when it is the
    /// person's only one).
    same: Vec<Vec<Bytes>>,
    /// Photos of everyone else.
    others: Vec<Vec<Bytes>>,
}

impl Selfies {
    fn new(photos: &[Photo]) -> Result<Self, SoakError> {
        // One selfie per photo of the folder: its mirror image, re-encoded.
        let selfies: Vec<Bytes> = photos
            .iter()
            .map(|p| Bytes::from(variant(&p.image, 1)))
            .collect();
        let person = |i: usize| photos[i].person.as_str();
        let mut same = Vec::new();
        let mut others = Vec::new();
        for photo in 0..photos.len() {
            let mut mine: Vec<Bytes> = (0..photos.len())
                .filter(|&p| p != photo && person(p) == person(photo))
                .map(|p| selfies[p].clone())
                .collect();
            if mine.is_empty() {
                mine.push(selfies[photo].clone());
            }
            let theirs: Vec<Bytes> = (0..photos.len())
                .filter(|&p| person(p) != person(photo))
                .map(|p| selfies[p].clone())
                .collect();
            if theirs.is_empty() {
                return Err(SoakError::Run(
                    "the photos folder needs at least two people".into(),
                ));
            }
            same.push(mine);
            others.push(theirs);
        }
        Ok(Selfies { same, others })
    }
}

/// What every sign-in client shares.
pub struct SignIns {
    pub http: VerifierClient,
    pub app: CognitoApp,
    /// Checks the pool's access tokens.
    pub tokens: AccessTokens,
    pub cast: Arc<Cast>,
    pub roster: Arc<Roster>,
    selfies: Selfies,
    targets: Vec<UserId>,
    genuine: Vec<UserId>,
    /// Attempts of each kind so far: each kind goes round its own users and selfies.
    impostors_so_far: AtomicUsize,
    genuine_so_far: AtomicUsize,
    pub impostor_percent: u8,
    pub patience: Patience,
}

impl SignIns {
    #[allow(clippy::too_many_arguments)] // The flow's parts, each named once here.
    pub fn new(
        http: VerifierClient,
        app: CognitoApp,
        tokens: AccessTokens,
        photos: &[Photo],
        cast: Arc<Cast>,
        roster: Arc<Roster>,
        impostor_percent: u8,
        patience: Patience,
    ) -> Result<Self, SoakError> {
        let users = |part: Part| -> Vec<UserId> {
            cast.people
                .iter()
                .filter(|p| p.part == part)
                .map(|p| p.user.clone())
                .collect()
        };
        let targets = users(Part::Target);
        let mut genuine = users(Part::Genuine);
        if genuine.is_empty() {
            // A run too small for both parts: the targets are also the genuine users.
            genuine = targets.clone();
        }
        Ok(SignIns {
            http,
            app,
            tokens,
            selfies: Selfies::new(photos)?,
            cast,
            roster,
            targets,
            genuine,
            impostors_so_far: AtomicUsize::new(0),
            genuine_so_far: AtomicUsize::new(0),
            impostor_percent,
            patience,
        })
    }

    /// Attempt `i`: who, with which selfie. Waits for a user of the right part to be ACTIVE.
    async fn pick(&self, i: usize) -> Result<(UserId, Kind, Bytes), SoakError> {
        let kind = if in_share(i, self.impostor_percent) {
            Kind::Impostor
        } else {
            Kind::Genuine
        };
        let (candidates, so_far) = match kind {
            Kind::Impostor => (&self.targets, &self.impostors_so_far),
            Kind::Genuine => (&self.genuine, &self.genuine_so_far),
        };
        let n = so_far.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let user = loop {
            let active = self.roster.active_among(candidates);
            if !active.is_empty() {
                break active[n % active.len()].clone();
            }
            if started.elapsed() > self.patience.settle {
                return Err(SoakError::Run(format!(
                    "no {kind:?} user ACTIVE after {:?}",
                    started.elapsed()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let photo = self
            .cast
            .person(&user)
            .map(|(_, p)| p.photo)
            .ok_or_else(|| SoakError::Run(format!("{user} is not in the cast")))?;
        let pool = match kind {
            Kind::Genuine => &self.selfies.same[photo],
            Kind::Impostor => &self.selfies.others[photo],
        };
        Ok((user, kind, pool[n % pool.len()].clone()))
    }

    /// One sign-in, started again while its server is down.
    async fn attempt(&self, user: UserId, kind: Kind, selfie: Bytes) -> Attempt {
        let channel = match self.cast.person(&user) {
            Some((_, person)) if person.through_pool => Channel::Pool,
            _ => Channel::Http,
        };
        let first_start = Instant::now();
        let mut restarts = 0;
        loop {
            let started = Instant::now();
            let mut verified = Verified::default();
            // Each selfie is new to the engine, as every real sign-in's is.
            let selfie = client::fresh_copy(&selfie);
            let result = match channel {
                Channel::Pool => self.through_pool(&user, selfie, &mut verified).await,
                Channel::Http => self.over_http(&user, selfie, &mut verified).await,
            };
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(Interrupted::Retry(e)) if first_start.elapsed() < self.patience.call => {
                    tracing::debug!(%user, error = %e, restarts, "sign-in interrupted: starting again");
                    tokio::time::sleep(pause(restarts)).await;
                    restarts += 1;
                    continue;
                }
                Err(Interrupted::Retry(e) | Interrupted::Fatal(e)) => Outcome::Error(e),
            };
            return Attempt {
                user,
                kind,
                channel,
                outcome,
                sequence: started.elapsed(),
                verify: verified.took,
                verify_failed: verified.correct == Some(false),
                restarts,
                challenge: verified.challenge,
                ended: Instant::now(),
            };
        }
    }

    /// Define, Create, PUT, Verify, Define over the verifier's HTTP trigger routes.
    async fn over_http(
        &self,
        user: &UserId,
        selfie: Bytes,
        verified: &mut Verified,
    ) -> Result<Outcome, Interrupted> {
        let client = &self.http;
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
            Err(e) if e.code().as_deref() == Some("cannot-sign-in") => {
                return Ok(Outcome::LockedOut);
            }
            Err(e) => return Err(e.into()),
        };
        verified.challenge = challenge_of(&challenge.key);
        client.put_presigned(&challenge.url, selfie).await?;
        let verify_started = Instant::now();
        let (correct, _) = client
            .verify(user.as_str(), &challenge, &challenge.key)
            .await?;
        verified.took = Some(verify_started.elapsed());
        verified.correct = Some(correct);
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

    /// InitiateAuth, PUT, RespondToAuthChallenge through the user pool; the tokens checked.
    async fn through_pool(
        &self,
        user: &UserId,
        selfie: Bytes,
        verified: &mut Verified,
    ) -> Result<Outcome, Interrupted> {
        let challenge = match self.app.start_face_sign_in(user.as_str()).await {
            Ok(challenge) => challenge,
            // Define failed the user at once: locked.
            Err(e) if e.cognito_code() == Some("NotAuthorizedException") => {
                return Ok(Outcome::LockedOut);
            }
            Err(e) => return Err(e.into()),
        };
        verified.challenge = challenge_of(&challenge.key);
        self.app.upload(&challenge, selfie).await?;
        let answered = match self.app.answer(&challenge, &challenge.key).await {
            Ok(answered) => answered,
            // Verify said no and Define then failed the sign-in (the user got locked by it).
            Err(e) if e.cognito_code() == Some("NotAuthorizedException") => {
                verified.correct = Some(false);
                return Ok(Outcome::Rejected);
            }
            Err(e) => return Err(e.into()),
        };
        match answered {
            Answered::TryAgain(_) => {
                verified.correct = Some(false);
                Ok(Outcome::Rejected)
            }
            Answered::SignedIn(tokens) => {
                verified.correct = Some(true);
                Ok(self.check_tokens(user, &tokens.access_token).await)
            }
        }
    }

    /// Whether the access token is the pool's and names `user`. The JWKS may be out of reach
    /// for a moment (the emulator restarting): the check is tried again meanwhile.
    async fn check_tokens(&self, user: &UserId, access_token: &str) -> Outcome {
        let started = Instant::now();
        let mut tries = 0;
        loop {
            match self.tokens.check(access_token).await {
                Ok(who) if who == *user => return Outcome::SignedIn,
                Ok(who) => return Outcome::Error(format!("tokens for {who}, not for {user}")),
                Err(e) if started.elapsed() < self.patience.call => {
                    tracing::debug!(%user, error = %e, "checking the access token; trying again");
                    tokio::time::sleep(pause(tries)).await;
                    tries += 1;
                }
                Err(e) => return Outcome::Error(format!("tokens that do not check: {e}")),
            }
        }
    }
}

/// Runs `count` attempts with `clients` concurrent clients; `done` counts the finished ones
/// (the chaos clock of the sign-in roles).
pub async fn run(
    sign_ins: Arc<SignIns>,
    count: usize,
    clients: usize,
    done: Arc<AtomicUsize>,
) -> Result<Vec<Attempt>, SoakError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (sign_ins, next, done) = (sign_ins.clone(), next.clone(), done.clone());
        tasks.spawn(async move {
            let mut attempts = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, SoakError>(attempts);
                }
                let (user, kind, selfie) = sign_ins.pick(i).await?;
                let attempt = sign_ins.attempt(user, kind, selfie).await;
                if let Outcome::Error(e) = &attempt.outcome {
                    tracing::warn!(user = %attempt.user, error = %e, "sign-in attempt failed");
                }
                attempts.push(attempt);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut attempts = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        attempts.extend(joined.map_err(|e| SoakError::Run(e.to_string()))??);
    }
    Ok(attempts)
}

/// The users some attempt found locked at its first step.
pub fn locked_out(attempts: &[Attempt]) -> BTreeSet<UserId> {
    attempts
        .iter()
        .filter(|a| a.outcome == Outcome::LockedOut)
        .map(|a| a.user.clone())
        .collect()
}
