//! Sign-in as an app does it, through Cognito's own API only: sign up, sign in with the
//! password (SRP), and the face challenge (`InitiateAuth` with `CUSTOM_AUTH`, a PUT of the
//! selfie to the URL in the challenge parameters, `RespondToAuthChallenge` with its key).
//! With the `password+face` policy, `CUSTOM_WITH_SRP`: the password verifier first, then the
//! face.
//!
//! A Face Liveness challenge (`livenessSessionId`) is answered through the engine's local
//! stand-in when the app is given its URL ([`CognitoApp::with_liveness_stand_in`]).
//!
//! Used by the end-to-end tests, `facegate demo` and `facegate bench cognito`: what drives
//! facegate, not what runs it.

use std::collections::HashMap;

use aws_cognito_srp::{SrpClient, User, UserAuthenticationParameters, VerificationParameters};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, ChallengeNameType};
use bytes::Bytes;
use facegate_shared::ids::DeviceId;
use facegate_shared::user_pool::UserPool;

use crate::client::{ClientError, VerifierClient};
use facegate_verifier::liveness::Sequence;
use facegate_verifier::triggers::create::public;
use facegate_verifier::triggers::verify::DEVICE_ID;

/// Why a step through Cognito did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Cognito's own error, by its code (`NotAuthorizedException`, ...).
    #[error("{call}: {code}: {message}")]
    Cognito {
        call: &'static str,
        code: String,
        message: String,
    },
    #[error("{call}: unexpected answer: {detail}")]
    Unexpected { call: &'static str, detail: String },
    #[error("the SRP password proof: {0}")]
    Srp(String),
    #[error(transparent)]
    Upload(#[from] ClientError),
}

impl AppError {
    /// The Cognito error code, if Cognito refused.
    pub fn cognito_code(&self) -> Option<&str> {
        match self {
            Self::Cognito { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn cognito_error<E>(
    call: &'static str,
) -> impl Fn(aws_sdk_cognitoidentityprovider::error::SdkError<E>) -> AppError
where
    E: aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    move |e| {
        let (code, message) = match e.as_service_error() {
            Some(service) => (
                service.code().unwrap_or("Unknown").to_string(),
                service.message().unwrap_or_default().to_string(),
            ),
            None => ("NoAnswer".to_string(), facegate_shared::report::chain(&e)),
        };
        AppError::Cognito {
            call,
            code,
            message,
        }
    }
}

/// The tokens Cognito issued.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: Option<String>,
}

/// A face challenge the app must answer: where to upload, and the answer (the key).
#[derive(Clone, Debug)]
pub struct FaceChallenge {
    pub username: String,
    session: String,
    /// Where the picture(s) go.
    pub uploads: Uploads,
    pub key: String,
    pub expiry: String,
    /// Every public parameter, as the client sees them (nothing secret may be among them).
    pub parameters: HashMap<String, String>,
}

/// What a challenge asks to upload.
#[derive(Clone, Debug, PartialEq)]
pub enum Uploads {
    /// One selfie.
    Selfie { url: String },
    /// Liveness: one frame per step, in order.
    Frames { steps: Sequence, urls: Vec<String> },
}

/// What answering a face challenge gave.
#[derive(Clone, Debug)]
pub enum Answered {
    SignedIn(Tokens),
    /// A wrong answer with tries left: the next challenge.
    TryAgain(FaceChallenge),
}

/// An app of the pool's app client (no secret, like a browser).
#[derive(Clone)]
pub struct CognitoApp {
    cognito: Client,
    pool: UserPool,
    http: VerifierClient,
    /// Sent as `clientMetadata.deviceId` with every answer, as the sign-in page does.
    device: Option<DeviceId>,
    /// The engine, whose Face Liveness stand-in takes a Face Liveness challenge's frames.
    liveness_stand_in: Option<VerifierClient>,
}

impl CognitoApp {
    pub fn new(cognito: Client, pool: UserPool) -> Self {
        Self {
            cognito,
            pool,
            // Only its presigned PUT is used: no verifier URL, no token.
            http: VerifierClient::new("", ""),
            device: None,
            liveness_stand_in: None,
        }
    }

    /// The same app, answering Face Liveness challenges (`aws-face-liveness`) through the
    /// engine's stand-in at `engine_url` (where AWS's app would run the FaceLivenessDetector):
    /// the challenge then reads as [`Uploads::Frames`], its URLs the session's.
    pub fn with_liveness_stand_in(&self, engine_url: &str) -> Self {
        Self {
            liveness_stand_in: Some(VerifierClient::new(engine_url, "")),
            ..self.clone()
        }
    }

    /// The same app on the device `device`: the per-device liveness limits count it.
    pub fn on_device(&self, device: DeviceId) -> Self {
        Self {
            device: Some(device),
            ..self.clone()
        }
    }

    pub fn pool(&self) -> &UserPool {
        &self.pool
    }

    /// `SignUp`: the local stack's PreSignUp trigger confirms the account at once.
    pub async fn sign_up(&self, username: &str, password: &str) -> Result<bool, AppError> {
        let answer = self
            .cognito
            .sign_up()
            .client_id(&self.pool.client_id)
            .username(username)
            .password(password)
            .send()
            .await
            .map_err(cognito_error("SignUp"))?;
        Ok(answer.user_confirmed)
    }

    /// `USER_SRP_AUTH`: the password alone, for the self-service routes (not a face sign-in).
    pub async fn password_sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Tokens, AppError> {
        let answer = self
            .prove_password(username, password, AuthFlowType::UserSrpAuth)
            .await?;
        tokens(
            answer.authentication_result(),
            "RespondToAuthChallenge PASSWORD_VERIFIER",
        )
    }

    /// Starts a face sign-in (`CUSTOM_AUTH`, face alone).
    pub async fn start_face_sign_in(&self, username: &str) -> Result<FaceChallenge, AppError> {
        let started = self
            .cognito
            .initiate_auth()
            .client_id(&self.pool.client_id)
            .auth_flow(AuthFlowType::CustomAuth)
            .auth_parameters("USERNAME", username)
            .send()
            .await
            .map_err(cognito_error("InitiateAuth CUSTOM_AUTH"))?;
        self.face_challenge(
            username,
            started.challenge_name(),
            started.challenge_parameters(),
            started.session(),
            "InitiateAuth CUSTOM_AUTH",
        )
        .await
    }

    /// Starts a password-then-face sign-in (`CUSTOM_WITH_SRP`): proves the password, then
    /// returns the face challenge Define presents after it.
    pub async fn start_password_and_face_sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<FaceChallenge, AppError> {
        let answer = self
            .prove_password(username, password, AuthFlowType::CustomAuth)
            .await?;
        self.face_challenge(
            username,
            answer.challenge_name(),
            answer.challenge_parameters(),
            answer.session(),
            "RespondToAuthChallenge PASSWORD_VERIFIER",
        )
        .await
    }

    /// `InitiateAuth` with `SRP_A` (for `CUSTOM_AUTH`, as `CUSTOM_WITH_SRP`), then the answer
    /// to Cognito's `PASSWORD_VERIFIER`: what comes after the password is proven.
    async fn prove_password(
        &self,
        username: &str,
        password: &str,
        flow: AuthFlowType,
    ) -> Result<
        aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
        AppError,
    >{
        let srp = SrpClient::new(
            User::new(&self.pool.id, username, password),
            &self.pool.client_id,
            None,
        );
        let UserAuthenticationParameters { a, .. } = srp.get_auth_parameters();
        let (call, with_srp) = match flow {
            AuthFlowType::CustomAuth => ("InitiateAuth CUSTOM_WITH_SRP", true),
            _ => ("InitiateAuth USER_SRP_AUTH", false),
        };
        let mut request = self
            .cognito
            .initiate_auth()
            .client_id(&self.pool.client_id)
            .auth_flow(flow)
            .auth_parameters("USERNAME", username)
            .auth_parameters("SRP_A", a);
        if with_srp {
            request = request.auth_parameters("CHALLENGE_NAME", "SRP_A");
        }
        let started = request.send().await.map_err(cognito_error(call))?;
        self.answer_password_verifier(
            &srp,
            started.challenge_name(),
            started.challenge_parameters(),
            started.session(),
        )
        .await
    }

    async fn answer_password_verifier(
        &self,
        srp: &SrpClient<User>,
        challenge: Option<&ChallengeNameType>,
        parameters: Option<&HashMap<String, String>>,
        session: Option<&str>,
    ) -> Result<
        aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
        AppError,
    >{
        let call = "InitiateAuth (password)";
        if challenge != Some(&ChallengeNameType::PasswordVerifier) {
            return Err(AppError::Unexpected {
                call,
                detail: format!("challenge {challenge:?}, expected PASSWORD_VERIFIER"),
            });
        }
        let empty = HashMap::new();
        let p = parameters.unwrap_or(&empty);
        let get = |name: &str| {
            p.get(name)
                .map(String::as_str)
                .ok_or_else(|| AppError::Unexpected {
                    call,
                    detail: format!("no {name} in the PASSWORD_VERIFIER parameters"),
                })
        };
        let user_id = get("USER_ID_FOR_SRP")?;
        let VerificationParameters {
            password_claim_secret_block,
            password_claim_signature,
            timestamp,
        } = srp
            .verify(get("SECRET_BLOCK")?, user_id, get("SALT")?, get("SRP_B")?)
            .map_err(|e| AppError::Srp(e.to_string()))?;
        self.cognito
            .respond_to_auth_challenge()
            .client_id(&self.pool.client_id)
            .challenge_name(ChallengeNameType::PasswordVerifier)
            .set_session(session.map(str::to_string))
            .challenge_responses("USERNAME", user_id)
            .challenge_responses("PASSWORD_CLAIM_SECRET_BLOCK", password_claim_secret_block)
            .challenge_responses("PASSWORD_CLAIM_SIGNATURE", password_claim_signature)
            .challenge_responses("TIMESTAMP", timestamp)
            .send()
            .await
            .map_err(cognito_error("RespondToAuthChallenge PASSWORD_VERIFIER"))
    }

    /// PUTs `selfie` to the challenge's presigned URL.
    /// Uploads the selfie of a single-selfie challenge.
    pub async fn upload(&self, challenge: &FaceChallenge, selfie: Bytes) -> Result<(), AppError> {
        match &challenge.uploads {
            Uploads::Selfie { url } => self.http.put_presigned(url, selfie).await?,
            Uploads::Frames { .. } => {
                return Err(AppError::Unexpected {
                    call: "upload",
                    detail: "a liveness challenge asks for frames, not one selfie".into(),
                });
            }
        };
        Ok(())
    }

    /// Uploads the frames of a liveness challenge, `frames[i]` for step `i`. More or fewer
    /// frames than steps is the caller's choice (the attack suite sends too few on purpose):
    /// the extra ones are dropped, the missing ones never uploaded.
    pub async fn upload_frames(
        &self,
        challenge: &FaceChallenge,
        frames: &[Bytes],
    ) -> Result<(), AppError> {
        let Uploads::Frames { urls, .. } = &challenge.uploads else {
            return Err(AppError::Unexpected {
                call: "upload_frames",
                detail: "a single-selfie challenge asks for one selfie, not frames".into(),
            });
        };
        for (url, frame) in urls.iter().zip(frames) {
            self.http.put_presigned(url, frame.clone()).await?;
        }
        Ok(())
    }

    /// Answers `challenge` with `answer` (normally its own key). A refusal that ends the
    /// sign-in is Cognito's `NotAuthorizedException`, as an [`AppError::Cognito`].
    pub async fn answer(
        &self,
        challenge: &FaceChallenge,
        answer: &str,
    ) -> Result<Answered, AppError> {
        let call = "RespondToAuthChallenge CUSTOM_CHALLENGE";
        let answered = self
            .cognito
            .respond_to_auth_challenge()
            .client_id(&self.pool.client_id)
            .challenge_name(ChallengeNameType::CustomChallenge)
            .session(&challenge.session)
            .challenge_responses("USERNAME", &challenge.username)
            .challenge_responses("ANSWER", answer)
            .set_client_metadata(
                self.device
                    .as_ref()
                    .map(|device| HashMap::from([(DEVICE_ID.to_string(), device.to_string())])),
            )
            .send()
            .await
            .map_err(cognito_error(call))?;
        if let Some(result) = answered.authentication_result() {
            return Ok(Answered::SignedIn(tokens(Some(result), call)?));
        }
        Ok(Answered::TryAgain(
            self.face_challenge(
                &challenge.username,
                answered.challenge_name(),
                answered.challenge_parameters(),
                answered.session(),
                call,
            )
            .await?,
        ))
    }

    /// The challenge Cognito presented; for a Face Liveness challenge, with the frames the
    /// local stand-in asks for.
    async fn face_challenge(
        &self,
        username: &str,
        name: Option<&ChallengeNameType>,
        parameters: Option<&HashMap<String, String>>,
        session: Option<&str>,
        call: &'static str,
    ) -> Result<FaceChallenge, AppError> {
        let liveness_session = parameters.and_then(|p| p.get(public::LIVENESS_SESSION));
        let uploads = match liveness_session {
            Some(id) => Some(self.stand_in_uploads(id, call).await?),
            None => None,
        };
        face_challenge(username, name, parameters, session, uploads, call)
    }

    /// The steps of the stand-in's session `id`, and where each step's frame goes.
    async fn stand_in_uploads(&self, id: &str, call: &'static str) -> Result<Uploads, AppError> {
        let unexpected = |detail: String| AppError::Unexpected { call, detail };
        let Some(stand_in) = &self.liveness_stand_in else {
            return Err(unexpected(
                "the challenge is a Face Liveness session: run AWS's FaceLivenessDetector on \
                 it, or, on the local stack, give the app the engine's URL \
                 (CognitoApp::with_liveness_stand_in; facegate bench liveness --liveness-stand-in)"
                    .into(),
            ));
        };
        let path = format!("/liveness/sessions/{id}");
        let answer = stand_in.get(&path).await?;
        let steps = answer.body["Steps"].as_str().unwrap_or_default();
        if !answer.status.is_success() {
            return Err(unexpected(format!("GET {path}: {}", answer.status)));
        }
        let steps: Sequence = steps
            .parse()
            .map_err(|e| unexpected(format!("the session's steps {steps:?}: {e}")))?;
        let urls = (1..=steps.steps().len())
            .map(|n| format!("{}{path}/frames/{n}", stand_in.base()))
            .collect();
        Ok(Uploads::Frames { steps, urls })
    }

    /// The whole face sign-in with one selfie: start, upload, answer with the key.
    pub async fn sign_in_with_face(
        &self,
        username: &str,
        selfie: Bytes,
    ) -> Result<Answered, AppError> {
        let challenge = self.start_face_sign_in(username).await?;
        self.upload(&challenge, selfie).await?;
        self.answer(&challenge, &challenge.key).await
    }
}

fn tokens(
    result: Option<&aws_sdk_cognitoidentityprovider::types::AuthenticationResultType>,
    call: &'static str,
) -> Result<Tokens, AppError> {
    let missing = |what: &str| AppError::Unexpected {
        call,
        detail: format!("no {what} in the answer"),
    };
    let result = result.ok_or_else(|| missing("AuthenticationResult"))?;
    Ok(Tokens {
        access_token: result
            .access_token()
            .ok_or_else(|| missing("AccessToken"))?
            .to_string(),
        id_token: result
            .id_token()
            .ok_or_else(|| missing("IdToken"))?
            .to_string(),
        refresh_token: result.refresh_token().map(str::to_string),
    })
}

fn face_challenge(
    username: &str,
    name: Option<&ChallengeNameType>,
    parameters: Option<&HashMap<String, String>>,
    session: Option<&str>,
    stand_in: Option<Uploads>,
    call: &'static str,
) -> Result<FaceChallenge, AppError> {
    let unexpected = |detail: String| AppError::Unexpected { call, detail };
    if name != Some(&ChallengeNameType::CustomChallenge) {
        return Err(unexpected(format!(
            "challenge {name:?}, expected CUSTOM_CHALLENGE"
        )));
    }
    let parameters = parameters.cloned().unwrap_or_default();
    let get = |key: &str| {
        parameters.get(key).cloned().ok_or_else(|| {
            unexpected(format!(
                "no {key} in the challenge parameters {parameters:?}"
            ))
        })
    };
    Ok(FaceChallenge {
        username: username.to_string(),
        session: session
            .ok_or_else(|| unexpected("no session".into()))?
            .to_string(),
        uploads: match (stand_in, parameters.get(public::STEPS)) {
            (Some(uploads), _) => uploads,
            (None, None) => Uploads::Selfie {
                url: get(public::URL)?,
            },
            (None, Some(steps)) => {
                let steps: Sequence = steps
                    .parse()
                    .map_err(|e| unexpected(format!("steps {steps:?}: {e}")))?;
                let urls = (1..=steps.steps().len())
                    .map(|n| get(&public::frame_url(n)))
                    .collect::<Result<_, _>>()?;
                Uploads::Frames { steps, urls }
            }
        },
        key: get(public::KEY)?,
        expiry: get(public::EXPIRY)?,
        parameters: parameters.clone(),
    })
}
