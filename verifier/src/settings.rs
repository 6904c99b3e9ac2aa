//! The verifier's settings: every field is a flag and an environment variable, with names of
//! their own (`FACEGATE_VERIFIER_*`, `FACEGATE_VERIFY_*`, `FACEGATE_CHALLENGE_*`) so they can be
//! flattened next to any other role's settings in `facegate dev`.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::liveness::LivenessPolicy;

/// What a person must present to sign in.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInPolicy {
    /// The face alone (Cognito `CUSTOM_AUTH`).
    Face,
    /// The password first (SRP, `CUSTOM_WITH_SRP`), then the face: NIST SP 800-63B 5.2.3
    /// accepts a biometric only beside another authenticator.
    #[value(name = "password+face")]
    PasswordAndFace,
}

/// How the verifier serves and decides.
#[derive(clap::Args, Clone, Debug)]
pub struct VerifierSettings {
    /// Address of the HTTP server (triggers, /v1 API, /metrics, /healthz, /readyz).
    #[arg(
        long = "verifier-listen",
        env = "FACEGATE_VERIFIER_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Bearer token every route but health and metrics requires. Required for the HTTP server.
    #[arg(
        long = "verifier-token",
        env = "FACEGATE_VERIFIER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Similarity (0-100) a selfie must reach against the registered face. 99 is Rekognition's
    /// recommendation for identity verification.
    #[arg(
        id = "verify_threshold",
        long = "verify-threshold",
        env = "FACEGATE_VERIFY_THRESHOLD",
        default_value_t = 99.0
    )]
    pub threshold: f32,
    /// Seconds a sign-in challenge (and its presigned upload URL) stays valid.
    #[arg(
        long = "challenge-ttl-secs",
        env = "FACEGATE_CHALLENGE_TTL_SECS",
        default_value_t = 180
    )]
    pub challenge_ttl_secs: u64,
    /// Seconds a registration upload URL from `POST /v1/registrations` stays valid.
    #[arg(
        long = "registration-url-ttl-secs",
        env = "FACEGATE_REGISTRATION_URL_TTL_SECS",
        default_value_t = 900
    )]
    pub registration_url_ttl_secs: u64,
    /// Largest selfie accepted, in bytes (Rekognition takes at most 5 MB as bytes).
    #[arg(
        long = "max-selfie-bytes",
        env = "FACEGATE_MAX_SELFIE_BYTES",
        default_value_t = 5 * 1024 * 1024
    )]
    pub max_selfie_bytes: u64,
    /// Largest JSON request body, in bytes (a Cognito event is a few kilobytes).
    #[arg(
        long = "verifier-max-json-bytes",
        env = "FACEGATE_VERIFIER_MAX_JSON_BYTES",
        default_value_t = 64 * 1024
    )]
    pub max_json_bytes: usize,
    /// Time budget of one request, in milliseconds. Cognito gives a trigger 5 s in all; the
    /// rest is for the network and the forwarding Lambda.
    #[arg(
        long = "verify-deadline-ms",
        env = "FACEGATE_VERIFY_DEADLINE_MS",
        default_value_t = 4_500
    )]
    pub deadline_ms: u64,
    /// Wrong answers Define allows before it fails the sign-in.
    #[arg(
        long = "verify-max-answers",
        env = "FACEGATE_VERIFY_MAX_ANSWERS",
        default_value_t = 3
    )]
    pub max_answers: usize,
    /// Requests served at the same time; more wait their turn.
    #[arg(
        long = "verifier-max-concurrent-requests",
        env = "FACEGATE_VERIFIER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 64
    )]
    pub max_concurrent_requests: usize,
    /// Face alone, or password then face.
    #[arg(
        long = "signin-policy",
        env = "FACEGATE_SIGNIN_POLICY",
        value_enum,
        default_value_t = SignInPolicy::Face
    )]
    pub policy: SignInPolicy,
    /// Confirm new sign-ups without a code (the PreSignUp trigger). Honoured on the local stack
    /// only (FACEGATE_ENV=local), which sends no email.
    #[arg(
        long = "signup-auto-confirm",
        env = "FACEGATE_SIGNUP_AUTO_CONFIRM",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub auto_confirm_sign_up: bool,
    /// The Cognito user pool whose access tokens the self-service routes accept [default: the
    /// stack's pool, found by its name `<prefix>-users`].
    #[arg(long = "user-pool-id", env = "FACEGATE_USER_POOL_ID")]
    pub user_pool_id: Option<String>,
    /// The pool's app client the tokens must be for [default: `<prefix>-app`, found by name].
    #[arg(long = "user-pool-client-id", env = "FACEGATE_USER_POOL_CLIENT_ID")]
    pub user_pool_client_id: Option<String>,
    /// Where the pool's signing keys are [default: from the Cognito endpoint or the issuer].
    #[arg(long = "user-pool-jwks-url", env = "FACEGATE_USER_POOL_JWKS_URL")]
    pub user_pool_jwks_url: Option<String>,
    /// The one web origin (`scheme://host[:port]`) whose pages may call the verifier from a
    /// browser (CORS), such as the sign-in page `facegate dev` serves. Unset: no CORS headers,
    /// so browsers refuse cross-origin calls.
    #[arg(long = "verifier-cors-origin", env = "FACEGATE_VERIFIER_CORS_ORIGIN")]
    pub cors_origin: Option<String>,
    /// Liveness: `active` (three frames showing a random sequence of head poses, checked on
    /// the server; see verifier/README.md), `aws-face-liveness` (a Rekognition Face Liveness
    /// session per challenge; locally the engine's stand-in) or `off` (one selfie: a photo of
    /// the user signs in).
    #[arg(
        long = "liveness",
        env = "FACEGATE_LIVENESS_POLICY",
        value_enum,
        default_value_t = LivenessPolicy::Active
    )]
    pub liveness: LivenessPolicy,
    /// Liveness: the similarity (0-100) every frame must reach against the registered face
    /// and against the frontal frame. Turned frames match less well than frontal ones; the
    /// frontal frame must still reach FACEGATE_VERIFY_THRESHOLD.
    #[arg(
        long = "liveness-same-person-threshold",
        env = "FACEGATE_LIVENESS_SAME_PERSON_THRESHOLD",
        default_value_t = 90.0
    )]
    pub liveness_same_person_threshold: f32,
    /// Liveness `aws-face-liveness`: the least `Confidence` (0-100) of a session that counts as
    /// live. AWS's default is 80; ours is stricter.
    #[arg(
        long = "liveness-min-confidence",
        env = "FACEGATE_LIVENESS_MIN_CONFIDENCE",
        default_value_t = 90.0
    )]
    pub liveness_min_confidence: f32,
}

/// A setting out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid verifier setting {name}: {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

impl VerifierSettings {
    /// The defaults, with `token`, on a random loopback port, and liveness `off`: what the
    /// tests and benchmarks of the single-selfie flow start in-process (`facegate dev` and
    /// every deployed role take the flags' defaults, liveness `active`).
    pub fn local(token: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: Some(token.into()),
            threshold: 99.0,
            challenge_ttl_secs: 180,
            registration_url_ttl_secs: 900,
            max_selfie_bytes: 5 * 1024 * 1024,
            max_json_bytes: 64 * 1024,
            deadline_ms: 4_500,
            max_answers: 3,
            max_concurrent_requests: 64,
            policy: SignInPolicy::Face,
            auto_confirm_sign_up: false,
            user_pool_id: None,
            user_pool_client_id: None,
            user_pool_jwks_url: None,
            cors_origin: None,
            liveness: LivenessPolicy::Off,
            liveness_same_person_threshold: 90.0,
            liveness_min_confidence: 90.0,
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let fail = |name, problem: &str| {
            Err(SettingsError {
                name,
                problem: problem.into(),
            })
        };
        if !(0.0..=100.0).contains(&self.threshold) {
            return fail("FACEGATE_VERIFY_THRESHOLD", "must be within 0-100");
        }
        if !(0.0..=100.0).contains(&self.liveness_same_person_threshold) {
            return fail(
                "FACEGATE_LIVENESS_SAME_PERSON_THRESHOLD",
                "must be within 0-100",
            );
        }
        if !(0.0..=100.0).contains(&self.liveness_min_confidence) {
            return fail("FACEGATE_LIVENESS_MIN_CONFIDENCE", "must be within 0-100");
        }
        // S3 presigned URLs are valid for at most 7 days.
        if self.challenge_ttl_secs == 0 || self.challenge_ttl_secs > 604_800 {
            return fail("FACEGATE_CHALLENGE_TTL_SECS", "must be 1 to 604800");
        }
        if self.registration_url_ttl_secs == 0 || self.registration_url_ttl_secs > 604_800 {
            return fail("FACEGATE_REGISTRATION_URL_TTL_SECS", "must be 1 to 604800");
        }
        if self.max_answers == 0 {
            return fail("FACEGATE_VERIFY_MAX_ANSWERS", "must be at least 1");
        }
        if self.deadline_ms == 0 {
            return fail("FACEGATE_VERIFY_DEADLINE_MS", "must be positive");
        }
        if self.user_pool_id.is_some() != self.user_pool_client_id.is_some() {
            return fail(
                "FACEGATE_USER_POOL_ID",
                "set it together with FACEGATE_USER_POOL_CLIENT_ID, or neither",
            );
        }
        if let Some(origin) = &self.cors_origin
            && let Err(problem) = check_origin(origin)
        {
            return fail("FACEGATE_VERIFIER_CORS_ORIGIN", &problem);
        }
        Ok(())
    }

    pub fn challenge_ttl(&self) -> Duration {
        Duration::from_secs(self.challenge_ttl_secs)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The HTTP server's own limit on a request body: the largest image plus room for headers
    /// of a multipart-free upload.
    pub(crate) fn max_body_bytes(&self) -> usize {
        usize::try_from(self.max_selfie_bytes)
            .unwrap_or(usize::MAX)
            .max(self.max_json_bytes)
    }
}

/// An origin as browsers send it: `http` or `https`, a host, an optional port, nothing else.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) || !origin.is_ascii() {
        return Err(format!(
            "must be one origin such as http://127.0.0.1:8081 (no path, no wildcard), not {origin:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        verifier: VerifierSettings,
    }

    #[test]
    fn a_new_stack_asks_for_liveness() {
        // The flag, not the environment, so a developer's FACEGATE_LIVENESS_POLICY is moot.
        let defaults = Flags::try_parse_from(["verifier"]).expect("the defaults parse");
        if std::env::var_os("FACEGATE_LIVENESS_POLICY").is_none() {
            assert_eq!(defaults.verifier.liveness, LivenessPolicy::Active);
        }
        let off = Flags::try_parse_from(["verifier", "--liveness", "off"]).expect("off parses");
        assert_eq!(off.verifier.liveness, LivenessPolicy::Off);
        assert!(Flags::try_parse_from(["verifier", "--liveness", "passive"]).is_err());
    }

    #[test]
    fn a_cors_origin_is_one_exact_origin() {
        let with = |origin: &str| VerifierSettings {
            cors_origin: Some(origin.into()),
            ..VerifierSettings::local("t")
        };
        assert!(with("http://127.0.0.1:8081").validate().is_ok());
        assert!(with("https://app.example.com").validate().is_ok());
        for bad in [
            "*",
            "127.0.0.1:8081",
            "http://a/b",
            "http://",
            "ftp://a",
            "http://*.a",
        ] {
            assert!(with(bad).validate().is_err(), "{bad} accepted");
        }
    }
}
