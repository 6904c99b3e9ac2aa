//! `facegate verifier --lambda`: the same trigger handlers as the Cognito trigger Lambda.
//! Cognito invokes one function for every trigger of the pool (the three of custom
//! authentication and PreSignUp); [`dispatch`] picks the handler from the event's
//! `triggerSource` and refuses any other event. An error fails the sign-in or sign-up; Verify
//! itself turns dependency errors into a wrong answer, so an error never issues tokens.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::error::VerifierError;
use crate::routes::cognito::source_ip;
use crate::service::Verifier;
use crate::triggers;

/// The trigger sources of custom authentication.
pub const DEFINE: &str = "DefineAuthChallenge_Authentication";
pub const CREATE: &str = "CreateAuthChallenge_Authentication";
pub const VERIFY: &str = "VerifyAuthChallengeResponse_Authentication";
/// The pre sign-up trigger sources (self-service, an administrator, a federated provider).
pub const SIGN_UP: [&str; 3] = [
    "PreSignUp_SignUp",
    "PreSignUp_AdminCreateUser",
    "PreSignUp_ExternalProvider",
];

/// Which trigger an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Define,
    Create,
    Verify,
    SignUp,
}

/// Reads `triggerSource`; anything but the three custom-auth triggers is refused.
pub fn trigger_of(event: &Value) -> Result<Trigger, VerifierError> {
    match event.get("triggerSource").and_then(Value::as_str) {
        Some(DEFINE) => Ok(Trigger::Define),
        Some(CREATE) => Ok(Trigger::Create),
        Some(VERIFY) => Ok(Trigger::Verify),
        Some(source) if SIGN_UP.contains(&source) => Ok(Trigger::SignUp),
        other => Err(VerifierError::invalid(
            "custom-auth or pre sign-up trigger event",
            format!("unsupported triggerSource {other:?}"),
        )),
    }
}

/// Answers one trigger event.
pub async fn dispatch(verifier: &Verifier, event: Value) -> Result<Value, VerifierError> {
    let answered = match trigger_of(&event)? {
        Trigger::Define => serde_json::to_value(
            triggers::define(verifier, parse(event, "define-auth-challenge event")?).await?,
        ),
        Trigger::Create => serde_json::to_value(
            triggers::create(verifier, parse(event, "create-auth-challenge event")?).await?,
        ),
        Trigger::Verify => {
            let ip = source_ip(&event);
            let (event, _) =
                triggers::verify(verifier, parse(event, "verify-auth-challenge event")?, ip)
                    .await?;
            serde_json::to_value(event)
        }
        Trigger::SignUp => serde_json::to_value(
            triggers::sign_up(verifier, parse(event, "pre sign-up event")?).await?,
        ),
    };
    answered.map_err(|e| VerifierError::dependency("serialising the event", e))
}

fn parse<T: serde::de::DeserializeOwned>(
    event: Value,
    expected: &'static str,
) -> Result<T, VerifierError> {
    serde_json::from_value(event).map_err(|e| VerifierError::invalid(expected, e))
}

/// Why the Lambda runtime could not run.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error("not running inside AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set)")]
    NotInLambda,
    #[error("the Lambda runtime stopped: {0}")]
    Runtime(lambda_runtime::Error),
}

/// Runs the Lambda runtime loop until the function is shut down.
pub async fn run(verifier: Verifier) -> Result<(), LambdaError> {
    // The runtime panics without its environment; say so plainly instead.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return Err(LambdaError::NotInLambda);
    }
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let verifier = verifier.clone();
        async move {
            dispatch(&verifier, event.payload)
                .await
                .map_err(|e| lambda_runtime::Error::from(facegate_shared::report::chain(&e)))
        }
    });
    lambda_runtime::run(handler)
        .await
        .map_err(LambdaError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::cognito::{
        CognitoEventUserPoolsCreateAuthChallenge, CognitoEventUserPoolsDefineAuthChallenge,
        CognitoEventUserPoolsVerifyAuthChallenge,
    };
    use serde_json::json;

    /// Events as Cognito sends them (AWS's documented shapes, nulls in `response`).
    fn event(source: &str, request: Value, response: Value) -> Value {
        json!({
            "version": "1", "triggerSource": source, "region": "us-east-1",
            "userPoolId": "us-east-1_example", "userName": "alice",
            "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "c1"},
            "request": request, "response": response,
        })
    }

    #[test]
    fn dispatch_picks_the_trigger_from_trigger_source() {
        let define = event(
            DEFINE,
            json!({"userAttributes": {}, "session": [
                {"challengeName": "CUSTOM_CHALLENGE", "challengeResult": false, "challengeMetadata": "FACEGATE_SELFIE"}
            ], "userNotFound": false}),
            json!({"challengeName": null, "issueTokens": null, "failAuthentication": null}),
        );
        assert_eq!(trigger_of(&define).unwrap(), Trigger::Define);
        let parsed: CognitoEventUserPoolsDefineAuthChallenge =
            parse(define, "define").expect("Cognito's define event parses");
        assert_eq!(parsed.request.session.len(), 1);

        let create = event(
            CREATE,
            json!({"userAttributes": {}, "challengeName": "CUSTOM_CHALLENGE", "session": [], "userNotFound": false}),
            json!({"publicChallengeParameters": null, "privateChallengeParameters": null, "challengeMetadata": null}),
        );
        assert_eq!(trigger_of(&create).unwrap(), Trigger::Create);
        let _: CognitoEventUserPoolsCreateAuthChallenge = parse(create, "create").unwrap();

        let verify = event(
            VERIFY,
            json!({"userAttributes": {}, "privateChallengeParameters": {"key": "k"},
                   "challengeAnswer": "signin/alice/c.jpg", "userNotFound": false}),
            json!({"answerCorrect": null}),
        );
        assert_eq!(trigger_of(&verify).unwrap(), Trigger::Verify);
        let parsed: CognitoEventUserPoolsVerifyAuthChallenge = parse(verify, "verify").unwrap();
        assert_eq!(
            parsed.request.challenge_answer,
            Some(Value::from("signin/alice/c.jpg"))
        );

        let sign_up = event(
            "PreSignUp_SignUp",
            json!({"userAttributes": {"email": "a@example.com"}, "validationData": null}),
            json!({"autoConfirmUser": false, "autoVerifyEmail": false, "autoVerifyPhone": false}),
        );
        assert_eq!(trigger_of(&sign_up).unwrap(), Trigger::SignUp);
        let _: aws_lambda_events::event::cognito::CognitoEventUserPoolsPreSignup =
            parse(sign_up, "sign-up").unwrap();

        for other in [
            json!({"triggerSource": "PostConfirmation_ConfirmSignUp"}),
            json!({"triggerSource": 7}),
            json!({}),
        ] {
            let err = trigger_of(&other).unwrap_err();
            assert_eq!(err.code(), "invalid-request", "{other}");
        }
    }
}
