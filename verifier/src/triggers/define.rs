//! Define auth challenge: decides, from the session so far, what happens next.
//!
//! A user who is unknown, has no ACTIVE registration or is locked fails at once. Under the
//! `password+face` policy the session must start with Cognito's own password steps (`SRP_A`,
//! then a successful `PASSWORD_VERIFIER`, which Define asks for) before any face challenge; a
//! session without them, or with a face answer before them, fails. Then a correct last face
//! answer issues tokens; `max_answers` wrong answers fail; otherwise the next
//! `CUSTOM_CHALLENGE` is presented. The users item is read on every call, so a lock set by the
//! failure-alert worker between two answers takes effect at the next step.

use aws_lambda_events::event::cognito::{
    CognitoEventUserPoolsChallengeResult, CognitoEventUserPoolsDefineAuthChallenge,
};
use chrono::Utc;
use facegate_shared::ids::UserId;

use super::{CUSTOM_CHALLENGE, PASSWORD_VERIFIER, SRP_A};
use crate::account::{self, SignInStatus};
use crate::error::VerifierError;
use crate::service::Verifier;
use crate::settings::SignInPolicy;

/// What Define answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    IssueTokens,
    Fail(&'static str),
    /// Present this challenge next (`CUSTOM_CHALLENGE`, or Cognito's `PASSWORD_VERIFIER`).
    Challenge(&'static str),
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
                    SignInStatus::Allowed { .. } => next_step(
                        &event.request.session,
                        verifier.settings().max_answers,
                        verifier.settings().policy,
                    ),
                }
            }
        }
    };
    tracing::info!(user = %user_name, ?step, "define auth challenge");
    let response = &mut event.response;
    response.issue_tokens = step == Step::IssueTokens;
    response.fail_authentication = matches!(step, Step::Fail(_));
    response.challenge_name = match step {
        Step::Challenge(name) => Some(name.to_string()),
        _ => None,
    };
    Ok(event)
}

/// The decision from the session alone (the user may sign in).
pub fn next_step(
    session: &[Option<CognitoEventUserPoolsChallengeResult>],
    max_answers: usize,
    policy: SignInPolicy,
) -> Step {
    let answers: Vec<&CognitoEventUserPoolsChallengeResult> = session.iter().flatten().collect();
    let name = |a: &CognitoEventUserPoolsChallengeResult| a.challenge_name.clone();
    // A failed step of any other kind (the password) fails the sign-in.
    if answers
        .iter()
        .any(|a| name(a).as_deref() != Some(CUSTOM_CHALLENGE) && !a.challenge_result)
    {
        return Step::Fail("a non-custom challenge failed");
    }
    let position = |wanted: &str| {
        answers
            .iter()
            .position(|a| name(a).as_deref() == Some(wanted))
    };
    let first_face = position(CUSTOM_CHALLENGE);
    if policy == SignInPolicy::PasswordAndFace {
        match (position(SRP_A), position(PASSWORD_VERIFIER)) {
            (None, _) => return Step::Fail("the password is required first"),
            (Some(_), None) if first_face.is_some() => {
                return Step::Fail("a face answer came before the password");
            }
            (Some(_), None) => return Step::Challenge(PASSWORD_VERIFIER),
            (Some(srp), Some(password)) => {
                if srp > password || first_face.is_some_and(|face| face < password) {
                    return Step::Fail("a face answer came before the password");
                }
            }
        }
    }
    let custom: Vec<_> = answers
        .iter()
        .filter(|a| name(a).as_deref() == Some(CUSTOM_CHALLENGE))
        .collect();
    if custom.last().is_some_and(|a| a.challenge_result) {
        return Step::IssueTokens;
    }
    if custom.iter().filter(|a| !a.challenge_result).count() >= max_answers {
        return Step::Fail("too many wrong answers");
    }
    Step::Challenge(CUSTOM_CHALLENGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(steps: &[(&str, bool)]) -> Vec<Option<CognitoEventUserPoolsChallengeResult>> {
        steps
            .iter()
            .map(|&(name, ok)| {
                let json = serde_json::json!({
                    "challengeName": name,
                    "challengeResult": ok,
                    "challengeMetadata": (name == CUSTOM_CHALLENGE).then_some("FACEGATE_SELFIE"),
                });
                Some(serde_json::from_value(json).unwrap())
            })
            .collect()
    }

    fn session(results: &[bool]) -> Vec<Option<CognitoEventUserPoolsChallengeResult>> {
        let faces: Vec<(&str, bool)> = results.iter().map(|&ok| (CUSTOM_CHALLENGE, ok)).collect();
        steps(&faces)
    }

    const FACE: SignInPolicy = SignInPolicy::Face;
    const BOTH: SignInPolicy = SignInPolicy::PasswordAndFace;
    const CHALLENGE: Step = Step::Challenge(CUSTOM_CHALLENGE);

    #[test]
    fn the_session_decides() {
        assert_eq!(next_step(&session(&[]), 3, FACE), CHALLENGE);
        assert_eq!(next_step(&session(&[true]), 3, FACE), Step::IssueTokens);
        assert_eq!(
            next_step(&session(&[false, true]), 3, FACE),
            Step::IssueTokens
        );
        assert_eq!(next_step(&session(&[false, false]), 3, FACE), CHALLENGE);
        assert!(matches!(
            next_step(&session(&[false, false, false]), 3, FACE),
            Step::Fail(_)
        ));
        let mut with_password = session(&[]);
        with_password.push(Some(
            serde_json::from_value(serde_json::json!({
                "challengeName": "PASSWORD_VERIFIER", "challengeResult": false
            }))
            .unwrap(),
        ));
        assert!(matches!(next_step(&with_password, 3, FACE), Step::Fail(_)));
    }

    #[test]
    fn password_and_face_needs_the_password_first() {
        let srp = (SRP_A, true);
        let password = (PASSWORD_VERIFIER, true);
        let face = |ok| (CUSTOM_CHALLENGE, ok);
        // Plain CUSTOM_AUTH, no password: refused at once.
        assert!(matches!(next_step(&steps(&[]), 3, BOTH), Step::Fail(_)));
        assert!(matches!(
            next_step(&steps(&[face(true)]), 3, BOTH),
            Step::Fail(_)
        ));
        // SRP_A: the password verifier comes next.
        assert_eq!(
            next_step(&steps(&[srp]), 3, BOTH),
            Step::Challenge(PASSWORD_VERIFIER)
        );
        assert!(matches!(
            next_step(&steps(&[srp, (PASSWORD_VERIFIER, false)]), 3, BOTH),
            Step::Fail(_)
        ));
        assert_eq!(next_step(&steps(&[srp, password]), 3, BOTH), CHALLENGE);
        assert_eq!(
            next_step(&steps(&[srp, password, face(false)]), 3, BOTH),
            CHALLENGE
        );
        assert_eq!(
            next_step(&steps(&[srp, password, face(true)]), 3, BOTH),
            Step::IssueTokens
        );
        // A face answer that skipped the password never issues tokens.
        assert!(matches!(
            next_step(&steps(&[srp, face(true)]), 3, BOTH),
            Step::Fail(_)
        ));
        assert!(matches!(
            next_step(&steps(&[srp, face(true), password]), 3, BOTH),
            Step::Fail(_)
        ));
        // The face-only policy accepts the password steps but does not need them.
        assert_eq!(
            next_step(&steps(&[srp, password, face(true)]), 3, FACE),
            Step::IssueTokens
        );
    }
}
