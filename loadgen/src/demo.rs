//! `facegate demo`: the whole story, told step by step against a running stack (what
//! `facegate dev` runs), with real photos, the way an app, Cognito and security operations
//! would see it.
//!
//! Everything a person does goes through the stack's Cognito user pool (`SignUp`,
//! `InitiateAuth`, `RespondToAuthChallenge`), whose triggers are facegate's Lambda.
//!
//! 1. Alice and Bob sign up in the user pool, sign in with their password, and register a
//!    face with their own access token (`POST /v1/registrations`, then a PUT of the photo to
//!    the presigned URL); the demo watches `GET /v1/registrations/<user>` until the pipeline
//!    makes them ACTIVE.
//! 2. Security ops subscribe a queue of their own to the `security-alerts` topic.
//! 3. Mallory registers Alice's face (a copy of her photo) as herself: the duplicate is caught
//!    and security ops receive the `duplicate-registration` alert.
//! 4. Alice signs in through Cognito (CUSTOM_AUTH: the challenge, the upload, the answer) and
//!    gets tokens; her access token opens her own data. Under active liveness (the default)
//!    she uploads the frames of her head-turn clip that show the steps the challenge asks;
//!    with liveness off, one frontal frame of it as the selfie.
//! 5. Someone tries to sign in as Alice with Bob's face, three times: every answer is refused
//!    and Cognito ends the sign-in without tokens.
//! 6. Alice is locked (Cognito refuses even a fresh sign-in) and security ops receive the
//!    `lockout` alert.
//! 7. Alice is erased (`DELETE /v1/users/<id>`): nothing of hers remains.
//! 8. Clean-up: the demo removes its queue and subscription and erases its users (also when a
//!    step fails or Ctrl-C stops it), unless `--keep-users` leaves Bob and Mallory for
//!    `facegate erase` to show.
//!
//! Every wait has a timeout; the first step that does not behave as described stops the demo
//! with an error naming it (non-zero exit). Users are named `demo-<run>-<name>`, so runs do not
//! collide by name; by face they would (the same photos every run), which is why the users are
//! erased at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::fresh_copy;
use crate::client::{ClientError, StatusCode, VerifierClient};
use crate::cognito_app::{Answered, AppError, CognitoApp, FaceChallenge, Uploads};
use crate::liveness::{Camera, Clip, SuiteError};
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use facegate_engine::face::calibration::person_of;
use facegate_shared::config::Topic;
use facegate_shared::events::{AlertKind, AlertSubject, Notification, SecurityAlert};
use facegate_shared::ids::{IdError, UploadId, UserId};
use facegate_shared::objects::ImageExtension;
use facegate_shared::report;
use facegate_shared::stack::{Stack, StackArgs, StackError};
use facegate_shared::user_pool::{LookupError, UserPool};
use facegate_verifier::liveness::Step;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How many numbered steps the story has.
const STEPS: u8 = 8;
/// How often a state is polled while waiting for it.
const POLL: Duration = Duration::from_millis(250);

/// Settings of `facegate demo`. Every one is also an environment variable.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    /// The running verifier's HTTP API (`facegate dev` prints it).
    #[arg(
        long,
        env = "FACEGATE_DEMO_VERIFIER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub verifier_url: String,
    /// The verifier's bearer token (`make dev` runs with a fixed local one; `facegate dev`
    /// prints the one it generated when none was set).
    #[arg(long, env = "FACEGATE_VERIFIER_TOKEN", hide_env_values = true)]
    pub verifier_token: String,
    /// Folder of labelled photos named `<person>_<n>.<jpg|png>`. Alice's first photo there
    /// registers her; of the others, the person with the most photos plays Bob.
    #[arg(
        long,
        env = "FACEGATE_DEMO_FACES",
        default_value = "tests/fixtures/faces"
    )]
    pub faces: PathBuf,
    /// The person (as named in the photos) who plays Alice: the one in the head-turn clip.
    #[arg(
        long,
        env = "FACEGATE_DEMO_ALICE",
        default_value = "lin_manuel_miranda"
    )]
    pub alice: String,
    /// Folder of Alice's head-turn clip (`frame_<n>.jpg`): she signs in with its frames.
    #[arg(
        long,
        env = "FACEGATE_DEMO_CLIP",
        default_value = "tests/fixtures/faces/clip"
    )]
    pub clip: PathBuf,
    /// Names this run's users `demo-<run id>-alice|bob|mallory` (1-16 lowercase letters,
    /// digits or `-`). A random one when unset.
    #[arg(long, env = "FACEGATE_DEMO_RUN_ID", value_parser = parse_run_id)]
    pub run_id: Option<String>,
    /// Longest wait for anything asynchronous (a registration settling, an alert, a lock),
    /// in seconds.
    #[arg(long, env = "FACEGATE_DEMO_STEP_TIMEOUT_SECS", default_value_t = 60)]
    pub step_timeout_secs: u64,
    /// Leave Bob and Mallory in place at the end (for `facegate erase`). By default the demo
    /// erases every user it created: the next run registers the same faces, which would
    /// otherwise be caught as duplicates of this run's.
    #[arg(long, env = "FACEGATE_DEMO_KEEP_USERS")]
    pub keep_users: bool,
}

fn parse_run_id(value: &str) -> Result<String, String> {
    let valid = (1..=16).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(value.to_string())
    } else {
        Err("must be 1 to 16 lowercase ASCII letters, digits or `-`".into())
    }
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the photos in {folder}: {detail}")]
    Photos { folder: PathBuf, detail: String },
    #[error("reading {path}: {source}")]
    Photo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("alice's head-turn clip: {0}")]
    Clip(#[from] SuiteError),
    #[error(transparent)]
    UserId(#[from] IdError),
    #[error("reaching the stack: {0} (is `facegate dev` running with the same FACEGATE_PREFIX?)")]
    Stack(#[from] StackError),
    #[error(
        "the stack's user pool: {0} (is `facegate dev` running with the same FACEGATE_PREFIX?)"
    )]
    UserPool(#[from] LookupError),
    // The problem is part of the message (not a `source`), so the one line says it all.
    #[error("step {number}/{total} ({title}) failed: {problem}", total = STEPS)]
    Step {
        number: u8,
        title: &'static str,
        problem: Problem,
    },
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
}

/// What went wrong inside a step.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("the verifier: {0}")]
    Verifier(#[from] ClientError),
    // Boxed: Cognito's errors are large, and every step's result carries a Problem.
    #[error("Cognito: {0}")]
    Cognito(Box<AppError>),
    #[error("{call}: {detail}")]
    Aws { call: &'static str, detail: String },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{0}")]
    Unexpected(String),
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        Problem::Cognito(Box::new(e))
    }
}

fn aws(call: &'static str) -> impl FnOnce(&(dyn std::error::Error + 'static)) -> Problem {
    move |e| Problem::Aws {
        call,
        detail: report::chain(e),
    }
}

/// One photo of the cast.
#[derive(Clone)]
struct Photo {
    file: String,
    bytes: Vec<u8>,
}

/// Who plays whom, and with which photos.
struct Cast {
    /// Alice's registration photo (Mallory registers a copy of it).
    alice: Photo,
    /// Alice's head-turn clip: the frames she signs in with.
    clip: Clip,
    /// Bob's registration photo, and the photo of his face used against Alice (his
    /// registration photo again if he has only one).
    bob: [Photo; 2],
}

impl Cast {
    /// Alice is `alice` with her clip; Bob the other person with the most photos, ties by name.
    fn new(folder: &Path, alice: &str, clip: &Path) -> Result<Self, DemoError> {
        let photos_error = |detail: String| DemoError::Photos {
            folder: folder.to_path_buf(),
            detail,
        };
        let entries = std::fs::read_dir(folder).map_err(|e| photos_error(e.to_string()))?;
        let mut people: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
        for entry in entries.filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            // Only JPEG and PNG photos are cast; the pipeline reads the format from the bytes.
            let image = file
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .is_some_and(|e| ImageExtension::parse(&e).is_some());
            if let Some(person) = person_of(&file).filter(|_| image) {
                let person = person.to_string();
                people.entry(person).or_default().push((file, entry.path()));
            }
        }
        people.values_mut().for_each(|photos| photos.sort());
        let read = |(file, path): &(String, PathBuf)| -> Result<Photo, DemoError> {
            Ok(Photo {
                file: file.clone(),
                bytes: std::fs::read(path).map_err(|source| DemoError::Photo {
                    path: path.clone(),
                    source,
                })?,
            })
        };
        let alice_photo = match people.remove(alice) {
            Some(photos) => read(&photos[0])?,
            None => {
                return Err(photos_error(format!(
                    "no photo of {alice} (named {alice}_<n>.<jpg|png>) to register alice with"
                )));
            }
        };
        let mut others: Vec<_> = people.into_iter().collect();
        others.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let Some((_, bob)) = others.first() else {
            return Err(photos_error(format!(
                "needs photos named <person>_<n>.<jpg|png> of someone other than {alice} to \
                 play bob"
            )));
        };
        Ok(Self {
            alice: alice_photo,
            clip: Clip::load(clip)?,
            bob: [read(&bob[0])?, read(bob.get(1).unwrap_or(&bob[0]))?],
        })
    }
}

/// The demo's users.
struct Users {
    alice: UserId,
    bob: UserId,
    mallory: UserId,
}

/// What the demo works with.
struct Demo {
    stack: Stack,
    verifier: VerifierClient,
    /// The people's side: Cognito's API, as their app calls it.
    app: CognitoApp,
    /// Every demo user's password (random per run).
    password: String,
    timeout: Duration,
    run_id: String,
    users: Users,
    cast: Cast,
}

/// Runs the demo; prints the story on stdout as it goes.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let cast = Cast::new(&args.faces, &args.alice, &args.clip)?;
    let run_id = args
        .run_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    let user = |name: &str| UserId::parse(format!("demo-{run_id}-{name}"));
    let users = Users {
        alice: user("alice")?,
        bob: user("bob")?,
        mallory: user("mallory")?,
    };
    let stack = Stack::connect(&args.stack).await?;
    let pool = UserPool::find(&stack.clients.cognito, &stack.names).await?;
    let demo = Demo {
        verifier: VerifierClient::new(&args.verifier_url, &args.verifier_token),
        app: CognitoApp::new(stack.clients.cognito.clone(), pool),
        password: format!("Demo-{}-9", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_secs(args.step_timeout_secs),
        stack,
        run_id,
        users,
        cast,
    };
    println!(
        "facegate demo, run {}: stack `{}`, user pool {}, verifier {}, photos from {}",
        demo.run_id,
        demo.stack.names.prefix(),
        demo.app.pool().id,
        demo.verifier.base(),
        args.faces.display()
    );
    println!(
        "  alice   = {}  (photo {}; signs in with frames of her head-turn clip {})",
        demo.users.alice,
        demo.cast.alice.file,
        args.clip.display()
    );
    println!(
        "  bob     = {}  (another person; photos {}, {})",
        demo.users.bob, demo.cast.bob[0].file, demo.cast.bob[1].file
    );
    println!("  mallory = {}  (uses alice's face)", demo.users.mallory);

    // The story may stop anywhere (a failed step, Ctrl-C); the security-ops queue it created
    // is removed whatever happened.
    let mut ops = None;
    let outcome = {
        let story = demo.story(&mut ops);
        tokio::pin!(story);
        tokio::select! {
            outcome = &mut story => outcome,
            _ = tokio::signal::ctrl_c() => Err(DemoError::Interrupted),
        }
    };
    let cleanup = step(STEPS, "clean up", demo.clean_up(ops, args.keep_users)).await;
    if let (Err(_), Err(e)) = (&outcome, &cleanup) {
        // The story's error is the one reported; this one must not go unseen either.
        eprintln!("also: {e}");
    }
    outcome?;
    cleanup?;
    println!();
    println!("The demo is over: every step behaved as described.");
    Ok(())
}

/// Runs one numbered step: prints its title, then what it sees; names it if it fails.
async fn step<T>(
    number: u8,
    title: &'static str,
    work: impl Future<Output = Result<T, Problem>>,
) -> Result<T, DemoError> {
    println!();
    println!("[{number}/{STEPS}] {title}");
    work.await.map_err(|problem| DemoError::Step {
        number,
        title,
        problem,
    })
}

/// Where a registration ended.
#[derive(Debug, Clone, PartialEq)]
struct Settled {
    state: String,
    reasons: Vec<String>,
}

impl fmt::Display for Settled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.state)?;
        if !self.reasons.is_empty() {
            write!(f, " ({})", self.reasons.join(", "))?;
        }
        Ok(())
    }
}

impl Demo {
    /// Removes the security-ops subscription and queue, then erases the demo's users through
    /// the verifier (idempotent: Alice is already gone when the story got that far).
    async fn clean_up(&self, ops: Option<SecurityOps>, keep_users: bool) -> Result<(), Problem> {
        if let Some(ops) = ops {
            ops.close(&self.stack).await?;
        }
        let users = &self.users;
        let mut erase = vec![&users.alice];
        if keep_users {
            println!(
                "  left in place (--keep-users): {} and {}; remove them with `facegate erase <user>`",
                users.bob, users.mallory
            );
        } else {
            erase.extend([&users.bob, &users.mallory]);
        }
        for user in erase {
            let path = format!("/v1/users/{user}");
            let answer = self.verifier.delete(&path).await?;
            if answer.status != StatusCode::OK {
                return Err(Problem::Unexpected(format!(
                    "DELETE {path}: HTTP {}: {} (remove the demo's users with `facegate erase {}`, \
                     `... {}`, `... {}`)",
                    answer.status, answer.body, users.alice, users.bob, users.mallory
                )));
            }
            let erased = &answer.body["erased"];
            println!(
                "  erased {user}: {} face(s), {} photo(s), {} record(s)",
                erased["faces"], erased["photos"], erased["records"]
            );
            // The account too: the pool keeps no user of a finished demo.
            let deleted = self
                .stack
                .clients
                .cognito
                .admin_delete_user()
                .user_pool_id(&self.app.pool().id)
                .username(user.as_str())
                .send()
                .await;
            match deleted {
                Ok(_) => println!("  deleted {user}'s account from the user pool"),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_user_not_found_exception()) => {}
                Err(e) => return Err(aws("AdminDeleteUser")(&e)),
            }
        }
        Ok(())
    }

    async fn story(&self, ops: &mut Option<SecurityOps>) -> Result<(), DemoError> {
        let users = &self.users;
        step(1, "alice and bob sign up and register a photo each", async {
            let alice = self.upload(&users.alice, &self.cast.alice).await?;
            let bob = self.upload(&users.bob, &self.cast.bob[0]).await?;
            for (user, upload) in [(&users.alice, &alice), (&users.bob, &bob)] {
                let settled = self.settle(user, upload).await?;
                if settled.reasons.iter().any(|r| r == "duplicate") {
                    return Err(Problem::Unexpected(format!(
                        "{user}'s registration ended {settled}: this face is already registered \
                         to another user of the stack (an earlier demo run that did not finish, \
                         or a registration of your own): erase that user with `facegate erase \
                         <user>`, or run on a fresh FACEGATE_PREFIX"
                    )));
                }
                if settled.state != "ACTIVE" {
                    return Err(Problem::Unexpected(format!(
                        "{user}'s registration ended {settled}, not ACTIVE"
                    )));
                }
            }
            Ok(())
        })
        .await?;

        let opened = step(
            2,
            "security ops subscribe a queue to the security-alerts topic",
            SecurityOps::open(&self.stack, &self.run_id),
        )
        .await?;
        let ops = ops.insert(opened);

        step(3, "mallory registers alice's face as her own", async {
            let photo = &self.cast.alice;
            let upload = self.upload(&users.mallory, photo).await?;
            let settled = self.settle(&users.mallory, &upload).await?;
            match settled.state.as_str() {
                "REJECTED" if settled.reasons.iter().any(|r| r == "duplicate") => println!(
                    "  the duplicate is caught: the registration is refused and its face deleted"
                ),
                // Under FACEGATE_DEDUP_POLICY=flag a duplicate signs in, and is reported.
                "ACTIVE" => println!(
                    "  the duplicate is flagged (dedup policy `flag`): ACTIVE, and reported"
                ),
                _ => {
                    return Err(Problem::Unexpected(format!(
                        "{} ended {settled}: expected REJECTED (duplicate) or a flagged ACTIVE",
                        users.mallory
                    )));
                }
            }
            ops.expect_alert(
                &self.stack,
                AlertKind::DuplicateRegistration,
                &users.mallory,
                self.timeout,
            )
            .await
        })
        .await?;

        step(4, "alice signs in with her face", async {
            let Answered::SignedIn(tokens) = self.alice_signs_in().await? else {
                return Err(Problem::Unexpected(
                    "Cognito refused alice's own face: a wrong answer".into(),
                ));
            };
            println!("  Cognito  -> IdToken, AccessToken, RefreshToken: alice is signed in");
            let path = format!("/v1/registrations/{}", users.alice);
            let answer = self
                .verifier
                .with_token(&tokens.access_token)
                .get(&path)
                .await?;
            println!("  GET {path} with her access token -> {}", answer.status);
            if answer.status != StatusCode::OK {
                return Err(Problem::Unexpected(format!(
                    "alice's own token did not open her data: {}",
                    answer.body
                )));
            }
            Ok(())
        })
        .await?;

        step(
            5,
            "someone tries to sign in as alice with bob's face, three times",
            async {
                let selfie = &self.cast.bob[1];
                let mut challenge = self.app.start_face_sign_in(users.alice.as_str()).await?;
                println!(
                    "  InitiateAuth CUSTOM_AUTH -> a one-time upload for {}",
                    challenge.key
                );
                for attempt in 1..=3 {
                    let what = self
                        .present(&challenge, &selfie.bytes, &selfie.file)
                        .await?;
                    let answered = self.app.answer(&challenge, &challenge.key).await;
                    print!("  attempt {attempt}: PUT {what} and answer -> ");
                    match answered {
                        Ok(Answered::TryAgain(next)) if attempt < 3 => {
                            println!("wrong answer, another challenge");
                            challenge = next;
                        }
                        Err(e)
                            if attempt == 3
                                && e.cognito_code() == Some("NotAuthorizedException") =>
                        {
                            println!(
                                "NotAuthorizedException: three wrong answers end this sign-in"
                            );
                        }
                        Ok(Answered::SignedIn(_)) => {
                            return Err(Problem::Unexpected(format!(
                                "Cognito issued tokens for alice on bob's face ({})",
                                selfie.file
                            )));
                        }
                        other => {
                            return Err(Problem::Unexpected(format!(
                                "attempt {attempt}: unexpected answer {other:?}"
                            )));
                        }
                    }
                }
                Ok(())
            },
        )
        .await?;

        step(6, "alice is locked and security ops are told", async {
            let started = Instant::now();
            self.wait_for("Cognito to refuse a fresh sign-in of alice (the lock)", || async {
                Ok(self.refused(&users.alice).await?.then_some(()))
            })
            .await?;
            println!(
                "  a fresh sign-in: NotAuthorizedException (locked, {:.1} s after the third failure)",
                started.elapsed().as_secs_f64()
            );
            ops.expect_alert(&self.stack, AlertKind::Lockout, &users.alice, self.timeout)
                .await
        })
        .await?;

        step(7, "alice asks to be forgotten", async {
            let path = format!("/v1/users/{}", users.alice);
            let answer = self.verifier.delete(&path).await?;
            if answer.status != StatusCode::OK {
                return Err(Problem::Unexpected(format!(
                    "DELETE {path}: HTTP {}: {}",
                    answer.status, answer.body
                )));
            }
            let erased = &answer.body["erased"];
            println!(
                "  DELETE {path} -> removed {} face(s), {} photo(s), {} record(s)",
                erased["faces"], erased["photos"], erased["records"]
            );
            let path = format!("/v1/registrations/{}", users.alice);
            let answer = self.verifier.get(&path).await?;
            if answer.status != StatusCode::NOT_FOUND {
                return Err(Problem::Unexpected(format!(
                    "GET {path} after erasure: HTTP {}, not 404: {}",
                    answer.status, answer.body
                )));
            }
            println!("  GET {path} -> 404 Not Found");
            let photos = self.photos_of(&users.alice).await?;
            if !photos.is_empty() {
                return Err(Problem::Unexpected(format!(
                    "photos of alice remain after erasure: {photos:?}"
                )));
            }
            println!("  no photo of alice is left in the bucket");
            if !self.refused(&users.alice).await? {
                return Err(Problem::Unexpected(
                    "Cognito still offers the erased alice a face challenge".into(),
                ));
            }
            println!("  a face sign-in of alice: NotAuthorizedException (no face to match)");
            Ok(())
        })
        .await
    }

    /// Uploads `photo` as a new registration of `user`, as the app would (its own S3 client).
    /// Signs `user` up in the pool, signs in with the password, and uploads `photo` as a
    /// new registration with the upload URL their own access token gets.
    async fn upload(&self, user: &UserId, photo: &Photo) -> Result<UploadId, Problem> {
        let confirmed = self.app.sign_up(user.as_str(), &self.password).await?;
        let tokens = self
            .app
            .password_sign_in(user.as_str(), &self.password)
            .await?;
        println!(
            "  {user}: SignUp ({}) and a password sign-in (SRP) -> an access token",
            if confirmed {
                "confirmed by the PreSignUp trigger"
            } else {
                "unconfirmed"
            }
        );
        let answer = self
            .verifier
            .with_token(&tokens.access_token)
            .send(
                crate::client::Method::POST,
                "/v1/registrations",
                Some(&json!({})),
            )
            .await?;
        let (Some(url), Some(upload_id)) = (
            answer.body["url"].as_str(),
            answer.body["upload_id"].as_str(),
        ) else {
            return Err(Problem::Unexpected(format!(
                "POST /v1/registrations with {user}'s token: HTTP {}: {}",
                answer.status, answer.body
            )));
        };
        let upload_id =
            UploadId::parse(upload_id).map_err(|e| Problem::Unexpected(e.to_string()))?;
        self.verifier
            .put_presigned(url, Bytes::from(photo.bytes.clone()))
            .await?;
        println!(
            "  {user}: POST /v1/registrations with their token, PUT {} to the URL it gave",
            photo.file
        );
        Ok(upload_id)
    }

    /// Polls `GET /v1/registrations/<user>` until the upload's registration is final,
    /// printing each state it is seen in.
    async fn settle(&self, user: &UserId, upload: &UploadId) -> Result<Settled, Problem> {
        let path = format!("/v1/registrations/{user}");
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut seen: Vec<String> = Vec::new();
        let settled = loop {
            if let Some(registration) = self.registration(&path, upload).await? {
                let state = registration["state"].as_str().unwrap_or("?");
                if seen.last().map(String::as_str) != Some(state) {
                    seen.push(state.to_string());
                }
                if matches!(state, "ACTIVE" | "REJECTED" | "FAILED" | "REPLACED") {
                    let reasons = registration["reasons"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(|r| r.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    break Settled {
                        state: state.to_string(),
                        reasons,
                    };
                }
            }
            if Instant::now() >= deadline {
                return Err(Problem::Timeout {
                    what: format!(
                        "{user}'s registration to settle (seen: {})",
                        if seen.is_empty() {
                            "nothing".to_string()
                        } else {
                            seen.join(" -> ")
                        }
                    ),
                    after: self.timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        };
        println!(
            "  {user}: GET {path} -> {} in {:.1} s (seen: {})",
            settled,
            started.elapsed().as_secs_f64(),
            seen.join(" -> ")
        );
        Ok(settled)
    }

    /// The registration of `upload` as `GET path` shows it; `None` while it is not recorded.
    async fn registration(&self, path: &str, upload: &UploadId) -> Result<Option<Value>, Problem> {
        let answer = self.verifier.get(path).await?;
        match answer.status {
            // Not recorded yet: the indexer has not seen the upload.
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => Ok(answer.body["registrations"].as_array().and_then(|all| {
                all.iter()
                    .find(|r| r["upload_id"] == upload.as_str())
                    .cloned()
            })),
            status => Err(Problem::Unexpected(format!(
                "GET {path}: HTTP {status}: {}",
                answer.body
            ))),
        }
    }

    /// Alice's face sign-in through Cognito: `InitiateAuth`, the upload of what the
    /// challenge asks (the clip's frames showing its steps, or one frontal frame of it), the
    /// answer.
    async fn alice_signs_in(&self) -> Result<Answered, Problem> {
        let challenge = self
            .app
            .start_face_sign_in(self.users.alice.as_str())
            .await?;
        match &challenge.uploads {
            Uploads::Frames { steps, urls } => {
                println!(
                    "  InitiateAuth CUSTOM_AUTH -> liveness steps {steps}, {} one-time uploads",
                    urls.len()
                );
                let frames = Camera::new(&self.cast.clip).frames(steps);
                self.app.upload_frames(&challenge, &frames).await?;
                println!("  PUT the frames of her head-turn clip that show {steps}");
            }
            Uploads::Selfie { .. } => {
                println!(
                    "  InitiateAuth CUSTOM_AUTH -> a one-time upload for {} (liveness off)",
                    challenge.key
                );
                let frontal = &self.cast.clip.pool(Step::Centre)[0];
                self.app.upload(&challenge, fresh_copy(frontal)).await?;
                println!("  PUT a frontal frame of her clip as the selfie");
            }
        }
        Ok(self.app.answer(&challenge, &challenge.key).await?)
    }

    /// Uploads `photo` for `challenge`: as the selfie, or as every frame of a liveness
    /// challenge (a photo held up to the camera). Says what was put.
    async fn present(
        &self,
        challenge: &FaceChallenge,
        photo: &[u8],
        file: &str,
    ) -> Result<String, Problem> {
        match &challenge.uploads {
            Uploads::Frames { urls, .. } => {
                let frames: Vec<Bytes> = urls.iter().map(|_| fresh_copy(photo)).collect();
                self.app.upload_frames(challenge, &frames).await?;
                Ok(format!("{file} as every liveness frame"))
            }
            Uploads::Selfie { .. } => {
                self.app.upload(challenge, fresh_copy(photo)).await?;
                Ok(file.to_string())
            }
        }
    }

    /// Whether Cognito refuses to even start a face sign-in of `user` (locked or unknown).
    async fn refused(&self, user: &UserId) -> Result<bool, Problem> {
        match self.app.start_face_sign_in(user.as_str()).await {
            Ok(_) => Ok(false),
            Err(e) if e.cognito_code() == Some("NotAuthorizedException") => Ok(true),
            // The lock landed between Define (which let the sign-in start) and Create (which
            // refuses a locked user): not yet the clean refusal, so ask again.
            Err(e) if e.cognito_code() == Some("InvalidLambdaResponseException") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object left under the user's registration and sign-in prefixes.
    async fn photos_of(&self, user: &UserId) -> Result<Vec<String>, Problem> {
        let mut keys = Vec::new();
        for prefix in [
            facegate_shared::config::REGISTRATIONS_PREFIX,
            facegate_shared::config::SIGNIN_PREFIX,
        ] {
            let listed = self
                .stack
                .clients
                .s3
                .list_objects_v2()
                .bucket(self.stack.names.bucket())
                .prefix(format!("{prefix}{user}/"))
                .send()
                .await
                .map_err(|e| aws("ListObjectsV2")(&e))?;
            keys.extend(
                listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        Ok(keys)
    }

    async fn wait_for<T, F, Fut>(&self, what: &str, check: F) -> Result<T, Problem>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Problem>>,
    {
        wait_for(what, self.timeout, check).await
    }
}

/// Polls `check` until it finds something, or fails after `within`.
async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T, Problem>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Problem>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(Problem::Timeout {
                what: what.to_string(),
                after: within,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Security operations' own subscription to the `security-alerts` topic: a queue, its access
/// policy for the topic, and a subscription with a filter policy on the `kind` attribute.
struct SecurityOps {
    queue_url: String,
    subscription_arn: String,
    /// Alerts received while waiting for another one.
    received: Vec<Notification<SecurityAlert>>,
}

impl SecurityOps {
    async fn open(stack: &Stack, run_id: &str) -> Result<Self, Problem> {
        let (sqs, sns) = (&stack.clients.sqs, &stack.clients.sns);
        let topic_arn = stack.topic_arn(Topic::SecurityAlerts);
        let queue_name = format!("{}-demo-{run_id}-security-ops", stack.names.prefix());
        let queue_url = sqs
            .create_queue()
            .queue_name(&queue_name)
            .send()
            .await
            .map_err(|e| aws("CreateQueue")(&e))?
            .queue_url
            .ok_or_else(|| Problem::Unexpected("CreateQueue answered no queue URL".into()))?;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws("GetQueueAttributes")(&e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| Problem::Unexpected("the new queue has no ARN".into()))?;
        // On AWS a topic can only deliver to a queue whose policy lets it in.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "AllowSecurityAlerts",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } }
            }]
        });
        sqs.set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| aws("SetQueueAttributes")(&e))?;
        let filter = json!({
            "kind": [AlertKind::DuplicateRegistration.as_str(), AlertKind::Lockout.as_str()]
        });
        let subscribed = sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("FilterPolicy", filter.to_string())
            .return_subscription_arn(true)
            .send()
            .await;
        let subscription_arn = match subscribed {
            Ok(out) => out.subscription_arn,
            Err(e) => {
                // Not handed back to the caller yet: remove the queue here.
                let problem = aws("Subscribe")(&e);
                let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
                return Err(problem);
            }
        };
        let ops = Self {
            queue_url,
            subscription_arn: subscription_arn.unwrap_or_default(),
            received: Vec::new(),
        };
        println!("  queue        {queue_name}");
        println!("  subscribed to {topic_arn}");
        println!("  filter policy {filter}");
        Ok(ops)
    }

    /// Waits for the alert of `kind` about `user`, checks its message attributes and prints
    /// it. Other alerts (other users on the same stack) are kept aside.
    async fn expect_alert(
        &mut self,
        stack: &Stack,
        kind: AlertKind,
        user: &UserId,
        within: Duration,
    ) -> Result<(), Problem> {
        let wanted = |note: &Notification<SecurityAlert>| {
            note.event.kind == kind && note.event.subject == AlertSubject::User(user.clone())
        };
        let deadline = Instant::now() + within;
        let note = loop {
            if let Some(i) = self.received.iter().position(wanted) {
                break self.received.swap_remove(i);
            }
            if Instant::now() >= deadline {
                return Err(Problem::Timeout {
                    what: format!(
                        "the {} alert about {user} on the security-ops queue",
                        kind.as_str()
                    ),
                    after: within,
                });
            }
            self.receive(stack).await?;
        };
        let (kind_attribute, severity_attribute) =
            (note.attribute("kind"), note.attribute("severity"));
        if kind_attribute != Some(kind.as_str())
            || severity_attribute != Some(note.event.severity.as_str())
        {
            return Err(Problem::Unexpected(format!(
                "the {} alert carries message attributes kind={kind_attribute:?} \
                 severity={severity_attribute:?}, not its own kind and severity",
                kind.as_str()
            )));
        }
        println!(
            "  security ops received: kind={} severity={} about {user}: {}",
            kind.as_str(),
            note.event.severity.as_str(),
            note.event.summary
        );
        Ok(())
    }

    /// One receive (a short long-poll); every message is taken off the queue.
    async fn receive(&mut self, stack: &Stack) -> Result<(), Problem> {
        let sqs = &stack.clients.sqs;
        let messages = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| aws("ReceiveMessage")(&e))?
            .messages
            .unwrap_or_default();
        for message in messages {
            let body = message.body().unwrap_or_default();
            let note = Notification::<SecurityAlert>::parse(body).map_err(|e| {
                Problem::Unexpected(format!("not a SecurityAlert notification: {e}: {body}"))
            })?;
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| aws("DeleteMessage")(&e))?;
            }
            self.received.push(note);
        }
        Ok(())
    }

    /// Unsubscribes and deletes the queue.
    async fn close(self, stack: &Stack) -> Result<(), Problem> {
        if !self.subscription_arn.is_empty() {
            stack
                .clients
                .sns
                .unsubscribe()
                .subscription_arn(&self.subscription_arn)
                .send()
                .await
                .map_err(|e| aws("Unsubscribe")(&e))?;
            println!("  unsubscribed {}", self.subscription_arn);
        }
        stack
            .clients
            .sqs
            .delete_queue()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|e| aws("DeleteQueue")(&e))?;
        println!("  deleted {}", self.queue_url);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_make_valid_names() {
        assert!(parse_run_id("a1b2-c3").is_ok());
        for bad in [
            "",
            "UPPER",
            "with space",
            "x".repeat(17).as_str(),
            "dot.ted",
        ] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_fixture_photos_cast_two_people() {
        let faces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/faces");
        let clip = &faces.join("clip");
        let cast = Cast::new(&faces, "lin_manuel_miranda", clip).expect("a cast");
        assert_eq!(person_of(&cast.alice.file), Some("lin_manuel_miranda"));
        let bob: Vec<_> = cast.bob.iter().map(|p| person_of(&p.file)).collect();
        assert!(bob.iter().all(|p| *p == bob[0]), "{bob:?}");
        assert_ne!(bob[0], Some("lin_manuel_miranda"));
        assert!(!cast.clip.pool(Step::Left).is_empty());
        assert!(Cast::new(&faces, "nobody", clip).is_err());
        assert!(Cast::new(&faces, "lin_manuel_miranda", Path::new("no/clip")).is_err());
        assert!(Cast::new(Path::new("no/such/folder"), "lin_manuel_miranda", clip).is_err());
    }
}
