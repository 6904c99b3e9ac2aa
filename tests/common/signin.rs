//! Sign-in under test: the pipeline's stack and engine ([`Pipeline`]), a verifier spawned
//! in-process on 127.0.0.1:0, and a test that plays Cognito: it builds the trigger events as
//! Cognito sends them (version, triggerSource, region, userPoolId, userName, callerContext,
//! request, response), keeps the session between calls, and uploads selfies with a real HTTP
//! PUT to the presigned URL. Every call goes through the verifier's own client
//! (`facegate_loadgen::client`), the one the load generators use; [`Calls`] only says how a
//! test wants its answers (any status returned, a dead connection a panic).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use facegate_loadgen::client::{Challenge, Method, Trigger, VerifierClient, cognito_event};
use facegate_shared::config::{Table, Topic};
use facegate_shared::events::{Notification, Origin};
use facegate_shared::ids::UserId;
use facegate_shared::ops::Health;
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::tables::auth_failures;
use facegate_verifier::{RunningVerifier, VerifierSettings};
use facegate_workers::alerts::AlertsSettings;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pipeline::{FACE_CALLS_PER_SECOND, Pacing, Pipeline, fixture};

pub const TOKEN: &str = "test-token-0123456789";
pub const CUSTOM_CHALLENGE: &str = "CUSTOM_CHALLENGE";

/// A stack, an engine and a verifier.
pub struct SignIn {
    pub pipeline: Pipeline,
    pub verifier: RunningVerifier,
    pub http: VerifierClient,
    shutdown: CancellationToken,
}

impl Drop for SignIn {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn limiter() -> Arc<FaceServiceLimiter> {
    let rate = std::num::NonZeroU32::new(FACE_CALLS_PER_SECOND).expect("positive");
    Arc::new(FaceServiceLimiter::new(&FaceServiceSettings::per_process(
        rate, rate,
    )))
}

impl SignIn {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// [`Self::start`] with more settings for provisioning (and so for the trigger Lambda).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let pipeline = Pipeline::start_with_env(Pacing::default(), env).await;
        let shutdown = CancellationToken::new();
        let verifier = facegate_verifier::spawn(
            pipeline.stack().clone(),
            limiter(),
            VerifierSettings::local(TOKEN),
            shutdown.clone(),
        )
        .await
        .expect("the verifier starts");
        let http = VerifierClient::new(verifier.url(), TOKEN);
        Self {
            pipeline,
            verifier,
            http,
            shutdown,
        }
    }

    /// A second verifier on the same stack with other settings.
    pub async fn another_verifier(&self, settings: VerifierSettings) -> RunningVerifier {
        facegate_verifier::spawn(
            self.pipeline.stack().clone(),
            limiter(),
            settings,
            self.shutdown.clone(),
        )
        .await
        .expect("the second verifier starts")
    }

    /// Registers `user` with the fixture photo `photo` as an ACTIVE registration (what the
    /// pipeline would do); returns the face id.
    pub async fn register(&self, user: &str, photo: &str) -> String {
        let user = UserId::parse(user).expect("a valid user id");
        facegate_loadgen::verifier::register_active(self.pipeline.stack(), &user, fixture(photo))
            .await
            .expect("registering the test user")
    }

    /// Runs the failure-alert worker in this process until the test ends.
    pub fn run_alerts(&self, settings: AlertsSettings) -> JoinHandle<()> {
        tokio::spawn(facegate_workers::alerts::run_alerts(
            self.pipeline.stack().clone(),
            self.pipeline.worker_settings(),
            settings,
            Health::default(),
            self.shutdown.clone(),
        ))
    }

    /// A new queue subscribed to `topic` (raw delivery off, as every facegate subscription).
    pub async fn subscribe(&self, topic: Topic, name: &str) -> String {
        let clients = &self.pipeline.stack().clients;
        let queue_name = format!("{}-test-{name}", self.pipeline.test.prefix);
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&queue_name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL");
        let arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        clients
            .sns
            .subscribe()
            .topic_arn(self.pipeline.stack().topic_arn(topic))
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .expect("Subscribe");
        url
    }

    /// Every notification of type `T` received on `queue_url` within `within`, until
    /// `enough` says the collection is complete.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        queue_url: &str,
        within: Duration,
        enough: impl Fn(&[Notification<T>]) -> bool,
    ) -> Vec<Notification<T>> {
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while !enough(&found) && tokio::time::Instant::now() < deadline {
            for message in self.pipeline.test.receive_once(queue_url, None).await {
                let body = message.body().unwrap_or_default();
                let note = Notification::<T>::parse(body)
                    .unwrap_or_else(|e| panic!("not the expected notification: {e}\n{body}"));
                found.push(note);
                self.pipeline.test.delete(queue_url, &message).await;
            }
        }
        found
    }

    /// The end of `origin`'s liveness timeout, if it has one (the `auth-failures` item the
    /// failure-alert worker writes).
    pub async fn timed_out_until(&self, origin: &Origin) -> Option<i64> {
        let stack = self.pipeline.stack();
        let item = stack
            .clients
            .dynamodb
            .get_item()
            .table_name(stack.table(Table::AuthFailures))
            .set_key(Some(auth_failures::timeout_key(origin)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem auth-failures")
            .item?;
        auth_failures::timed_out_until(&item)
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        self.pipeline
            .stack()
            .clients
            .s3
            .head_object()
            .bucket(self.pipeline.bucket())
            .key(key)
            .send()
            .await
            .is_ok()
    }

    // Cognito's side of the conversation.

    /// Define: the answered event.
    pub async fn define(&self, user: &str, session: &[Value]) -> Value {
        let event = cognito_event(
            user,
            Trigger::Define,
            json!({ "userAttributes": attributes(user), "session": session, "userNotFound": false }),
        );
        self.http
            .trigger(Trigger::Define, &event)
            .await
            .unwrap_or_else(|e| panic!("define: {e}"))
            .body
    }

    pub async fn create(&self, user: &str, session: &[Value]) -> Challenge {
        self.http
            .create(user, session)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"))
    }

    pub async fn verify(&self, user: &str, challenge: &Challenge, answer: &str) -> bool {
        self.verify_at(&self.http, user, challenge, answer).await
    }

    /// Verify through the verifier behind `http`. Returns `answerCorrect`.
    pub async fn verify_at(
        &self,
        http: &VerifierClient,
        user: &str,
        challenge: &Challenge,
        answer: &str,
    ) -> bool {
        http.verify(user, challenge, answer)
            .await
            .unwrap_or_else(|e| panic!("verify: {e}"))
            .0
    }

    /// Define -> Create -> PUT `selfie` -> Verify, appending to `session` as Cognito does.
    /// Returns `answerCorrect`.
    pub async fn attempt(&self, user: &str, selfie: Vec<u8>, session: &mut Vec<Value>) -> bool {
        let defined = self.define(user, session).await;
        assert_eq!(
            defined["response"]["challengeName"], CUSTOM_CHALLENGE,
            "Define presents the challenge: {defined}"
        );
        let challenge = self.create(user, session).await;
        assert_eq!(self.http.put(&challenge.url, selfie).await, StatusCode::OK);
        let correct = self.verify(user, &challenge, &challenge.key).await;
        session.push(challenge.session_entry(correct));
        correct
    }
}

fn attributes(user: &str) -> Value {
    json!({
        "sub": "d8f5a3c2-0000-4000-8000-000000000000",
        "cognito:user_status": "CONFIRMED",
        "email_verified": "true",
        "email": format!("{}@example.com", user.replace(' ', ".")),
    })
}

/// The shared client's calls as tests write them: every answer returned whatever its status,
/// a failure to get one a panic naming the call.
pub trait Calls {
    /// Sends `body` as `content_type`, with the bearer `token` or none; the status and the
    /// JSON body (Null if none).
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value);

    async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        self.request(
            "POST",
            path,
            token,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `GET url` (a whole URL, not a path of the verifier); the status and the JSON body.
    async fn get_absolute(&self, url: &str) -> (StatusCode, Value);

    /// A PUT of `body` to a presigned URL.
    async fn put(&self, url: &str, body: Vec<u8>) -> StatusCode;

    /// Sends a request whose body is larger than the server accepts, as a browser or curl
    /// would: the head first, then the body, while reading the answer. A server that refuses
    /// on the announced Content-Length answers 413 and closes before the body is written, so
    /// the writing side may fail with a broken pipe; the answer read is what the client gets.
    /// (hyper's client reports the write error instead of the answer it already received.)
    async fn send_oversized(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        len: usize,
    ) -> (StatusCode, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authority = self
            .base()
            .strip_prefix("http://")
            .expect("an http:// base URL")
            .trim_end_matches('/')
            .to_string();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connecting to the verifier");
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {len}\r\n\r\n"
        );
        let writing = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            let chunk = vec![0xFFu8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                writer.write_all(&chunk[..n]).await?;
                left -= n;
            }
            writer.flush().await
        });
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                answer.extend_from_slice(&buf[..n]);
                if complete_response(&answer) {
                    return Ok(());
                }
            }
        })
        .await
        .expect("the verifier answers within 30 s");
        // The body write may or may not have failed: either is allowed after an early answer.
        writing.abort();
        read.expect("reading the verifier's answer");
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("a complete HTTP answer, got {text:?}"));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line, got {head:?}"));
        (
            StatusCode::from_u16(status).expect("a valid status"),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// `http://host:port` of the verifier.
    fn base(&self) -> &str;
}

impl Calls for VerifierClient {
    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let answer = self
            .send_as(method, path, token, content_type, body.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (answer.status, answer.body)
    }

    async fn get_absolute(&self, url: &str) -> (StatusCode, Value) {
        let answer = self.get_url(url).await.unwrap_or_else(|e| panic!("{e}"));
        (answer.status, answer.body)
    }

    async fn put(&self, url: &str, body: Vec<u8>) -> StatusCode {
        let answer = self
            .put_url(url, body.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        answer.status
    }

    fn base(&self) -> &str {
        VerifierClient::base(self)
    }
}

/// Whether `bytes` hold a whole HTTP/1.1 answer: the head and as many body bytes as its
/// Content-Length announces.
fn complete_response(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}
