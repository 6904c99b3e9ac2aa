//! Pre sign-up: who may create an account in the pool.
//!
//! The user name becomes the facegate user id (S3 keys, DynamoDB keys), so a name facegate
//! could not use is refused here rather than later. On the local stack, which sends no email,
//! the account is confirmed at once when `FACEGATE_SIGNUP_AUTO_CONFIRM` says so; on AWS that
//! setting is ignored and Cognito's own confirmation applies.

use aws_lambda_events::event::cognito::CognitoEventUserPoolsPreSignup;
use facegate_shared::aws::Deployment;
use facegate_shared::ids::UserId;

use crate::error::VerifierError;
use crate::service::Verifier;

pub async fn sign_up(
    verifier: &Verifier,
    mut event: CognitoEventUserPoolsPreSignup,
) -> Result<CognitoEventUserPoolsPreSignup, VerifierError> {
    let name = event
        .cognito_event_user_pools_header
        .user_name
        .clone()
        .unwrap_or_default();
    // The error text is what Cognito shows the person signing up.
    let user = UserId::parse(name.as_str())?;
    let local = verifier.stack().aws.deployment == Deployment::Local;
    let confirm = local && verifier.settings().auto_confirm_sign_up;
    event.response.auto_confirm_user = confirm;
    tracing::info!(user = %user, auto_confirmed = confirm, "sign-up accepted");
    Ok(event)
}
