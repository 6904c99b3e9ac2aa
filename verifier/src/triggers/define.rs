//! Define auth challenge: decides, from the session so far, what happens next.
//!
//! A user who is unknown, has no ACTIVE registration or is locked fails at once. A correct
//! last answer issues tokens; `max_answers` wrong answers fail; otherwise the next
//! `CUSTOM_CHALLENGE` is presented. The users item is read on every call, so a lock set by the
//! failure-alert worker between two answers takes effect at the next step.

use aws_lambda_events::event::cognito::{
    CognitoEventUserPoolsChallengeResult, CognitoEventUserPoolsDefineAuthChallenge,
};
use chrono::Utc;
use facegate_shared::ids::UserId;

use super::CUSTOM_CHALLENGE;
use crate::account::{self, SignInStatus};
use crate::error::VerifierError;
use crate::service::Verifier;

/// What Define answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    IssueTokens,
    Fail(&'static str),
    Challenge,
}

pub async fn define(
    verifier: &Verifier,
    mut event: CognitoEventUserPoolsDefineAuthChallenge,
) -> Result<CognitoEventUserPoolsDefineAuthChallenge, VerifierError> {
    let user_name = event
        .cognito_event_user_pools_header
        .user_name
        .clone()
        .unwrap_or_default();
    let step = if event.request.user_not_found {
        Step::Fail("user not found")
    } else {
        match UserId::parse(user_name.as_str()) {
            Err(_) => Step::Fail("not a facegate user id"),
            Ok(user) => {
                let deadline = verifier.deadline();
                match account::status(verifier, &user, Utc::now(), &deadline).await? {
                    SignInStatus::Refused(_) => Step::Fail("cannot sign in"),
                    SignInStatus::Allowed { .. } => {
                        next_step(&event.request.session, verifier.settings().max_answers)
                    }
                }
            }
        }
    };
    tracing::info!(user = %user_name, ?step, "define auth challenge");
    let response = &mut event.response;
    response.issue_tokens = step == Step::IssueTokens;
    response.fail_authentication = matches!(step, Step::Fail(_));
    response.challenge_name = (step == Step::Challenge).then(|| CUSTOM_CHALLENGE.to_string());
    Ok(event)
}

/// The decision from the session alone (the user may sign in).
pub fn next_step(
    session: &[Option<CognitoEventUserPoolsChallengeResult>],
    max_answers: usize,
) -> Step {
    let answers: Vec<&CognitoEventUserPoolsChallengeResult> = session.iter().flatten().collect();
    // facegate's flow is custom challenges only; a failed step of any other kind (a password
    // verifier in a combined flow) fails the sign-in.
    if answers
        .iter()
        .any(|a| a.challenge_name.as_deref() != Some(CUSTOM_CHALLENGE) && !a.challenge_result)
    {
        return Step::Fail("a non-custom challenge failed");
    }
    let custom: Vec<_> = answers
        .iter()
        .filter(|a| a.challenge_name.as_deref() == Some(CUSTOM_CHALLENGE))
        .collect();
    if custom.last().is_some_and(|a| a.challenge_result) {
        return Step::IssueTokens;
    }
    if custom.iter().filter(|a| !a.challenge_result).count() >= max_answers {
        return Step::Fail("too many wrong answers");
    }
    Step::Challenge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(results: &[bool]) -> Vec<Option<CognitoEventUserPoolsChallengeResult>> {
        results
            .iter()
            .map(|&ok| {
                let json = serde_json::json!({
                    "challengeName": CUSTOM_CHALLENGE,
                    "challengeResult": ok,
                    "challengeMetadata": "FACEGATE_SELFIE",
                });
                Some(serde_json::from_value(json).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_session_decides() {
        assert_eq!(next_step(&session(&[]), 3), Step::Challenge);
        assert_eq!(next_step(&session(&[true]), 3), Step::IssueTokens);
        assert_eq!(next_step(&session(&[false, true]), 3), Step::IssueTokens);
        assert_eq!(next_step(&session(&[false, false]), 3), Step::Challenge);
        assert!(matches!(
            next_step(&session(&[false, false, false]), 3),
            Step::Fail(_)
        ));
        let mut with_password = session(&[]);
        with_password.push(Some(
            serde_json::from_value(serde_json::json!({
                "challengeName": "PASSWORD_VERIFIER", "challengeResult": false
            }))
            .unwrap(),
        ));
        assert!(matches!(next_step(&with_password, 3), Step::Fail(_)));
    }
}
