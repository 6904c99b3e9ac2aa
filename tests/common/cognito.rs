//! Sign-in through the real user pool: a [`SignIn`] stack (whose provisioning created the
//! pool, its app client and the trigger Lambda running the `facegate` binary under test), an
//! app of the pool ([`CognitoApp`]: Cognito's own API only), and an independent check of the
//! tokens Cognito issues against the pool's JWKS.

use facegate_loadgen::cognito_app::{CognitoApp, Tokens};
use facegate_shared::user_pool::UserPool;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use super::signin::{Calls, SignIn};

/// A password the default pool policy accepts.
pub const PASSWORD: &str = "Correct-horse-9";

pub struct PoolStack {
    pub env: SignIn,
    pub app: CognitoApp,
    pub pool: UserPool,
}

impl PoolStack {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// With settings for the trigger Lambda (e.g. `FACEGATE_SIGNIN_POLICY`).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let env = SignIn::start_with_env(env).await;
        let stack = env.pipeline.stack();
        let pool = UserPool::find(&stack.clients.cognito, &stack.names)
            .await
            .expect("facegate provision created the user pool and its app client");
        let app = CognitoApp::new(stack.clients.cognito.clone(), pool.clone());
        Self { env, app, pool }
    }

    /// Signs `user` up through Cognito (the PreSignUp trigger confirms them) and registers
    /// `photo` as their ACTIVE face.
    pub async fn person(&self, user: &str, photo: &str) -> String {
        let confirmed = self
            .app
            .sign_up(user, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("SignUp {user}: {e}"));
        assert!(confirmed, "the local PreSignUp trigger confirms {user}");
        self.env.register(user, photo).await
    }

    /// The claims of `token` if its signature verifies against the pool's published keys and
    /// it is this pool's token of kind `token_use` (checked here, not by facegate's code).
    pub async fn verified_claims(&self, token: &str, token_use: &str) -> Value {
        let url = self
            .pool
            .jwks_url(Some(&std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(
                |_| facegate_shared::aws::LOCAL_STACK_URL.to_string(),
            )));
        let (status, body) = self.env.http.get_absolute(&url).await;
        assert_eq!(status, 200, "GET {url}");
        let keys: JwkSet = serde_json::from_value(body).expect("a JWKS");
        let header = jsonwebtoken::decode_header(token).expect("a JWT header");
        assert_eq!(header.alg, Algorithm::RS256);
        let jwk = keys
            .find(header.kid.as_deref().expect("a key id"))
            .expect("the token's key is in the pool's JWKS");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[self.pool.issuer()]);
        validation.validate_aud = token_use == "id";
        if token_use == "id" {
            validation.set_audience(&[&self.pool.client_id]);
        }
        let data = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_jwk(jwk).expect("an RSA key"),
            &validation,
        )
        .unwrap_or_else(|e| panic!("the {token_use} token verifies: {e}"));
        assert_eq!(data.claims["token_use"], token_use);
        data.claims
    }

    /// Checks both tokens and returns the user name they name.
    pub async fn signed_in_as(&self, tokens: &Tokens) -> String {
        let access = self.verified_claims(&tokens.access_token, "access").await;
        assert_eq!(access["client_id"], self.pool.client_id.as_str());
        let id = self.verified_claims(&tokens.id_token, "id").await;
        assert_eq!(access["username"], id["cognito:username"]);
        access["username"].as_str().expect("a username").to_string()
    }
}
