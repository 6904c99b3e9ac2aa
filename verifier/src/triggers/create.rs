//! Create auth challenge: a one-time challenge for one selfie.
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
use crate::service::Verifier;
use crate::upload_url::presign_put;

/// Names of the public challenge parameters, what the app reads.
pub mod public {
    pub const URL: &str = "url";
    pub const KEY: &str = "key";
    pub const EXPIRY: &str = "expiry";
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
    let issued = IssuedChallenge::new(user, face_id, now, verifier.settings().challenge_ttl());
    let url = presign_put(verifier, &issued.key(), verifier.settings().challenge_ttl()).await?;
    challenge::record(verifier, &issued, &deadline).await?;
    tracing::info!(user = %issued.upload.user_id, challenge = %issued.upload.challenge_id, "challenge issued");
    let response = &mut event.response;
    response.public_challenge_parameters = [
        (public::URL.to_string(), url),
        (public::KEY.to_string(), issued.key()),
        (
            public::EXPIRY.to_string(),
            issued.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ]
    .into();
    response.private_challenge_parameters = issued.private_parameters();
    response.challenge_metadata = Some(CHALLENGE_METADATA.to_string());
    Ok(event)
}
