//! The stack's Cognito user pool: found by its name (`<prefix>-users`, see
//! [`crate::config::StackNames::user_pool`]), with its app client (`<prefix>-app`), and where its
//! tokens come from (the issuer) and are checked against (the JWKS).
//!
//! `facegate provision` creates the pool locally; on AWS the CloudFormation template does, with
//! the same names, so every role and tool finds it the same way.

use aws_sdk_cognitoidentityprovider::Client;

use crate::config::StackNames;

/// A user pool and the app client people sign in through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPool {
    /// `us-east-1_AbC123`.
    pub id: String,
    pub client_id: String,
}

/// Why the pool or its client could not be found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("listing Cognito {what} failed")]
    List {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("more than one Cognito {what} is named {name}")]
    Ambiguous { what: &'static str, name: String },
    #[error("no Cognito {what} is named {name}: run `facegate provision`")]
    Missing { what: &'static str, name: String },
}

impl UserPool {
    /// The stack's pool and app client.
    pub async fn find(cognito: &Client, names: &StackNames) -> Result<Self, LookupError> {
        let pool_name = names.user_pool();
        let id = find_pool_id(cognito, &pool_name)
            .await?
            .ok_or(LookupError::Missing {
                what: "user pool",
                name: pool_name,
            })?;
        let client_name = names.app_client();
        let client_id =
            find_client_id(cognito, &id, &client_name)
                .await?
                .ok_or(LookupError::Missing {
                    what: "app client",
                    name: client_name,
                })?;
        Ok(Self { id, client_id })
    }

    /// The region is the part of the pool id before `_`.
    pub fn region(&self) -> &str {
        self.id.split_once('_').map_or("us-east-1", |(r, _)| r)
    }

    /// The `iss` claim of the pool's tokens (the same locally: the emulator signs as AWS does).
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region(),
            self.id
        )
    }

    /// Where the pool publishes its signing keys: under the Cognito endpoint when one is set
    /// (the emulator), else under the issuer.
    pub fn jwks_url(&self, cognito_endpoint: Option<&str>) -> String {
        match cognito_endpoint {
            Some(endpoint) => format!(
                "{}/{}/.well-known/jwks.json",
                endpoint.trim_end_matches('/'),
                self.id
            ),
            None => format!("{}/.well-known/jwks.json", self.issuer()),
        }
    }
}

/// The id of the one pool named `name`, if there is one.
pub async fn find_pool_id(cognito: &Client, name: &str) -> Result<Option<String>, LookupError> {
    let mut found = Vec::new();
    let mut pages = cognito
        .list_user_pools()
        .max_results(60)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| LookupError::List {
            what: "user pools",
            source: Box::new(e),
        })?;
        found.extend(
            page.user_pools()
                .iter()
                .filter(|p| p.name() == Some(name))
                .filter_map(|p| p.id().map(str::to_string)),
        );
    }
    one(found, "user pool", name)
}

/// The id of the one app client of `pool_id` named `name`, if there is one.
pub async fn find_client_id(
    cognito: &Client,
    pool_id: &str,
    name: &str,
) -> Result<Option<String>, LookupError> {
    let mut found = Vec::new();
    let mut pages = cognito
        .list_user_pool_clients()
        .user_pool_id(pool_id)
        .max_results(60)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| LookupError::List {
            what: "app clients",
            source: Box::new(e),
        })?;
        found.extend(
            page.user_pool_clients()
                .iter()
                .filter(|c| c.client_name() == Some(name))
                .filter_map(|c| c.client_id().map(str::to_string)),
        );
    }
    one(found, "app client", name)
}

fn one(
    mut found: Vec<String>,
    what: &'static str,
    name: &str,
) -> Result<Option<String>, LookupError> {
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(LookupError::Ambiguous {
            what,
            name: name.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_and_keys_follow_the_pool_id() {
        let pool = UserPool {
            id: "eu-west-1_AbC123".into(),
            client_id: "c".into(),
        };
        assert_eq!(
            pool.issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            pool.jwks_url(None),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
        );
        assert_eq!(
            pool.jwks_url(Some("http://127.0.0.1:4566/")),
            "http://127.0.0.1:4566/eu-west-1_AbC123/.well-known/jwks.json"
        );
    }
}
