//! The Cognito user pool people sign in to, and its app client.
//!
//! The pool's Define/Create/Verify custom-auth triggers and its PreSignUp trigger are the
//! trigger function ([`super::lambda`]). The app client has no secret (a browser uses it) and
//! allows exactly the flows facegate's sign-in needs: `CUSTOM_AUTH` (face alone, or
//! `CUSTOM_WITH_SRP` for password then face), SRP for the password, and refresh tokens.
//! Pools and clients are found by name, so a re-run changes only what differs.

use aws_sdk_cognitoidentityprovider::types::{
    ExplicitAuthFlowsType, LambdaConfigType, PreventUserExistenceErrorTypes,
};

use super::plan::UserPoolPlan;
use super::{Change, ProvisionError, Report, aws_error};
use crate::user_pool::{self, UserPool};

/// The flows the app client allows, in the order AWS lists them back.
pub const AUTH_FLOWS: [ExplicitAuthFlowsType; 3] = [
    ExplicitAuthFlowsType::AllowCustomAuth,
    ExplicitAuthFlowsType::AllowRefreshTokenAuth,
    ExplicitAuthFlowsType::AllowUserSrpAuth,
];

fn lambda_config(function_arn: &str) -> LambdaConfigType {
    LambdaConfigType::builder()
        .define_auth_challenge(function_arn)
        .create_auth_challenge(function_arn)
        .verify_auth_challenge_response(function_arn)
        .pre_sign_up(function_arn)
        .build()
}

/// Which of the four triggers do not point at the function.
fn trigger_drift(actual: Option<&LambdaConfigType>, function_arn: &str) -> Vec<&'static str> {
    let arn = Some(function_arn);
    let mut drift = Vec::new();
    let config = actual
        .cloned()
        .unwrap_or_else(|| LambdaConfigType::builder().build());
    if config.define_auth_challenge() != arn {
        drift.push("DefineAuthChallenge");
    }
    if config.create_auth_challenge() != arn {
        drift.push("CreateAuthChallenge");
    }
    if config.verify_auth_challenge_response() != arn {
        drift.push("VerifyAuthChallengeResponse");
    }
    if config.pre_sign_up() != arn {
        drift.push("PreSignUp");
    }
    drift
}

/// Creates the pool and its client, or brings their triggers and flows in line.
pub(super) async fn ensure_user_pool(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    plan: &UserPoolPlan,
    function_arn: &str,
    report: &mut Report,
) -> Result<UserPool, ProvisionError> {
    let pool_name = plan.name.as_str();
    let found = user_pool::find_pool_id(cognito, pool_name)
        .await
        .map_err(|e| lookup_error(e, pool_name))?;
    let pool_id = match found {
        None => {
            let created = cognito
                .create_user_pool()
                .pool_name(pool_name)
                .lambda_config(lambda_config(function_arn))
                .send()
                .await
                .map_err(aws_error("CreateUserPool", pool_name))?;
            report.record("user pool", pool_name, Change::Created);
            created
                .user_pool
                .and_then(|p| p.id)
                .ok_or(ProvisionError::Incomplete {
                    call: "CreateUserPool",
                    resource: pool_name.into(),
                    what: "pool id",
                })?
        }
        Some(id) => {
            let described = cognito
                .describe_user_pool()
                .user_pool_id(&id)
                .send()
                .await
                .map_err(aws_error("DescribeUserPool", pool_name))?;
            let drift = trigger_drift(
                described.user_pool().and_then(|p| p.lambda_config()),
                function_arn,
            );
            if drift.is_empty() {
                report.record("user pool", pool_name, Change::Unchanged);
            } else {
                cognito
                    .update_user_pool()
                    .user_pool_id(&id)
                    .lambda_config(lambda_config(function_arn))
                    .send()
                    .await
                    .map_err(aws_error("UpdateUserPool", pool_name))?;
                let what = drift.iter().map(|t| format!("trigger {t}")).collect();
                report.record("user pool", pool_name, Change::Updated(what));
            }
            id
        }
    };
    let client_id = ensure_client(cognito, &pool_id, plan, report).await?;
    Ok(UserPool {
        id: pool_id,
        client_id,
    })
}

async fn ensure_client(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    pool_id: &str,
    plan: &UserPoolPlan,
    report: &mut Report,
) -> Result<String, ProvisionError> {
    let name = plan.app_client.as_str();
    let found = user_pool::find_client_id(cognito, pool_id, name)
        .await
        .map_err(|e| lookup_error(e, name))?;
    let Some(client_id) = found else {
        let created = cognito
            .create_user_pool_client()
            .user_pool_id(pool_id)
            .client_name(name)
            .generate_secret(false)
            .set_explicit_auth_flows(Some(AUTH_FLOWS.to_vec()))
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .send()
            .await
            .map_err(aws_error("CreateUserPoolClient", name))?;
        report.record("app client", name, Change::Created);
        return created.user_pool_client.and_then(|c| c.client_id).ok_or(
            ProvisionError::Incomplete {
                call: "CreateUserPoolClient",
                resource: name.into(),
                what: "client id",
            },
        );
    };
    let described = cognito
        .describe_user_pool_client()
        .user_pool_id(pool_id)
        .client_id(&client_id)
        .send()
        .await
        .map_err(aws_error("DescribeUserPoolClient", name))?;
    let mut flows: Vec<String> = described
        .user_pool_client()
        .map(|c| c.explicit_auth_flows())
        .unwrap_or_default()
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    flows.sort();
    let mut wanted: Vec<String> = AUTH_FLOWS.iter().map(|f| f.as_str().to_string()).collect();
    wanted.sort();
    if flows == wanted {
        report.record("app client", name, Change::Unchanged);
    } else {
        cognito
            .update_user_pool_client()
            .user_pool_id(pool_id)
            .client_id(&client_id)
            .client_name(name)
            .set_explicit_auth_flows(Some(AUTH_FLOWS.to_vec()))
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .send()
            .await
            .map_err(aws_error("UpdateUserPoolClient", name))?;
        report.record(
            "app client",
            name,
            Change::Updated(vec![format!("auth flows {}", wanted.join(" "))]),
        );
    }
    Ok(client_id)
}

fn lookup_error(e: user_pool::LookupError, resource: &str) -> ProvisionError {
    match e {
        user_pool::LookupError::Ambiguous { what, name } => ProvisionError::Drift {
            resource: resource.into(),
            detail: format!("more than one {what} is named {name}: remove all but one"),
        },
        other => ProvisionError::Aws {
            call: "List user pools/clients",
            resource: resource.into(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_must_point_at_the_function() {
        assert!(trigger_drift(Some(&lambda_config("arn:f")), "arn:f").is_empty());
        assert_eq!(trigger_drift(None, "arn:f").len(), 4);
        let partial = LambdaConfigType::builder()
            .define_auth_challenge("arn:f")
            .create_auth_challenge("arn:old")
            .verify_auth_challenge_response("arn:f")
            .pre_sign_up("arn:f")
            .build();
        assert_eq!(
            trigger_drift(Some(&partial), "arn:f"),
            vec!["CreateAuthChallenge"]
        );
    }
}
