//! `facegate verifier --lambda`: the same trigger handlers as the Cognito trigger Lambda.
//! Cognito invokes one function for all three triggers; [`dispatch`] picks the handler from
//! the event's `triggerSource`.

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

/// Answers one trigger event.
pub async fn dispatch(verifier: &Verifier, event: Value) -> Result<Value, VerifierError> {
    let source = event
        .get("triggerSource")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let answered = match source.as_str() {
        DEFINE => serde_json::to_value(
            triggers::define(verifier, parse(event, "define-auth-challenge event")?).await?,
        ),
        CREATE => serde_json::to_value(
            triggers::create(verifier, parse(event, "create-auth-challenge event")?).await?,
        ),
        VERIFY => {
            let ip = source_ip(&event);
            let (event, _) =
                triggers::verify(verifier, parse(event, "verify-auth-challenge event")?, ip)
                    .await?;
            serde_json::to_value(event)
        }
        other => {
            return Err(VerifierError::invalid(
                "custom-auth trigger event",
                format!("unsupported triggerSource {other:?}"),
            ));
        }
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
