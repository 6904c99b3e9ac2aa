//! Create auth challenge: a one-time challenge for one selfie, or, with liveness `active`, for
//! one frame per step of a random pose sequence (each frame its own presigned URL), or, with
//! `aws-face-liveness`, for a Rekognition Face Liveness session (its id public).
//!
//! The client gets (public parameters) a presigned PUT URL for
//! `signin/<user_id>/<challenge_id>.jpg`, that key, and the expiry. Verify gets (private
//! parameters, which Cognito never shows the client) the expected key, the registered face id
//! and the issue time. The challenge is also recorded in the `challenges` table, so it can be
//! answered once. No face id, score or other secret reaches the client: not in the public
//! parameters, not in the challenge metadata.

use aws_lambda_events::event::cognito::CognitoEventUserPoolsCreateAuthChallenge;
use chrono::{SecondsFormat, Utc};
use facegate_shared::ids::UserId;

use super::CUSTOM_CHALLENGE;
use crate::account::{self, SignInStatus};
use crate::challenge::{self, IssuedChallenge};
use crate::error::VerifierError;
use crate::face_liveness;
use crate::liveness::{LivenessPolicy, Sequence};
use crate::service::Verifier;
use crate::upload_url::presign_put;

/// Names of the public challenge parameters, what the app reads.
pub mod public {
    /// Where to PUT the selfie (single-selfie challenges only).
    pub const URL: &str = "url";
    /// The answer to send once the upload(s) are done.
    pub const KEY: &str = "key";
    pub const EXPIRY: &str = "expiry";
    /// Liveness: the poses to show, in order (`centre,left,right`).
    pub const STEPS: &str = "steps";
    /// Liveness `aws-face-liveness`: the Face Liveness session to run the detector on.
    pub const LIVENESS_SESSION: &str = "livenessSessionId";
    /// Liveness: where to PUT the frame of step n (from 1): `frame1Url`, `frame2Url`, ...
    pub fn frame_url(n: usize) -> String {
        format!("frame{n}Url")
    }
}

/// Shown in the session (to Define, not to the client): which kind of challenge this was.
pub const CHALLENGE_METADATA: &str = "FACEGATE_SELFIE";

pub async fn create(
    verifier: &Verifier,
    mut event: CognitoEventUserPoolsCreateAuthChallenge,
) -> Result<CognitoEventUserPoolsCreateAuthChallenge, VerifierError> {
    let deadline = verifier.deadline();
    let user_name = event
        .cognito_event_user_pools_header
        .user_name
        .clone()
        .unwrap_or_default();
    if let Some(name) = event.request.challenge_name.as_deref()
        && name != CUSTOM_CHALLENGE
    {
        return Err(VerifierError::invalid(
            "create-auth-challenge event",
            format!("challengeName {name:?}, expected {CUSTOM_CHALLENGE}"),
        ));
    }
    let user = UserId::parse(user_name.as_str())?;
    let now = Utc::now();
    // Define has just checked this, but Create is a separate call: check again rather than
    // issue a challenge for a face that is gone.
    let face_id = match account::status(verifier, &user, now, &deadline).await? {
        SignInStatus::Allowed { face_id } => face_id,
        SignInStatus::Refused(reason) => {
            return Err(VerifierError::CannotSignIn {
                user: user.to_string(),
                reason,
            });
        }
    };
    let ttl = verifier.settings().challenge_ttl();
    let mut issued = IssuedChallenge::new(user, face_id, now, ttl);
    let mut public_parameters = vec![
        (public::KEY.to_string(), issued.key()),
        (
            public::EXPIRY.to_string(),
            issued.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ];
    match verifier.settings().liveness {
        LivenessPolicy::Off => {
            let url = presign_put(verifier, &issued.key(), ttl).await?;
            public_parameters.push((public::URL.to_string(), url));
        }
        LivenessPolicy::Active => {
            let user = &issued.upload.user_id;
            let memory = account::liveness_memory(verifier, user, &deadline).await?;
            let random = u64::from_le_bytes(
                uuid::Uuid::new_v4().as_bytes()[..8]
                    .try_into()
                    .unwrap_or_default(),
            );
            let steps = Sequence::draw(memory.last_steps.as_ref(), random);
            account::remember_liveness(verifier, user, Some(&steps), None, &deadline).await?;
            public_parameters.push((public::STEPS.to_string(), steps.to_string()));
            issued = issued.with_steps(steps);
            for (n, key) in issued.frame_keys().iter().enumerate() {
                let url = presign_put(verifier, key, ttl).await?;
                public_parameters.push((public::frame_url(n + 1), url));
            }
        }
        LivenessPolicy::AwsFaceLiveness => {
            let challenge_id = &issued.upload.challenge_id;
            let session = face_liveness::open_session(verifier, challenge_id, &deadline).await?;
            public_parameters.push((public::LIVENESS_SESSION.to_string(), session.clone()));
            issued = issued.with_liveness_session(session);
        }
    }
    challenge::record(verifier, &issued, &deadline).await?;
    tracing::info!(user = %issued.upload.user_id, challenge = %issued.upload.challenge_id,
        steps = issued.steps.as_ref().map(ToString::to_string), "challenge issued");
    let response = &mut event.response;
    response.public_challenge_parameters = public_parameters.into_iter().collect();
    response.private_challenge_parameters = issued.private_parameters();
    response.challenge_metadata = Some(CHALLENGE_METADATA.to_string());
    Ok(event)
}
