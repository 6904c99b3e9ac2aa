//! The face engine dying under the registration pipeline. Two properties:
//!
//! - SIGKILLed in the middle of IndexFaces and of DeleteFaces, after it wrote the change to its
//!   collection log (fsync) and before its answer reached the worker, the pipeline still ends
//!   with one face per ACTIVE registration and no face without its registration, and the engine
//!   comes back with what it had written;
//! - out of reach through a registration's last delivery, so that the worker marks it FAILED
//!   but cannot delete its face (the same state as a worker killed between the two), the face
//!   is deleted by the dead-letter sweep once the engine is back.
//!
//! A crash proxy stands between the workers and a `facegate engine` process: it forwards every
//! call; armed for an operation, it reads the engine's whole answer (the change is on disk by
//! then), SIGKILLs the engine, drops the worker's connection without an answer, and starts the
//! engine again on the same address and data folder; told to, it refuses calls as an
//! unreachable service would. The indexer and dedup-search run as real processes against it.
//!
//! Needs the emulator (`scripts/stack.sh start`; `AWS_ENDPOINT_URL` if it is not on 4566) and
//! `scripts/setup.sh` (models, ONNX Runtime).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use common::pipeline::{fixture, workspace_root};
use common::{TestStack, eventually};
use facegate_shared::aws::AwsSettings;
use facegate_shared::config::Queue;
use facegate_shared::ids::UploadId;
use facegate_shared::registration::{RegistrationRecord, RegistrationState};
use facegate_shared::tables::registrations;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::process::{Child, Command};

/// `facegate engine` as a process of its own, on a fixed address and data folder.
struct Engine {
    addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Engine {
    async fn start(data_dir: &Path) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut engine = Engine {
            addr,
            data_dir: data_dir.to_owned(),
            log: data_dir.with_extension("log"),
            child: None,
        };
        engine.run().await;
        engine
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn run(&mut self) {
        let root = workspace_root();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the engine's log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_facegate"));
        command
            .arg("engine")
            .env("FACEGATE_ENGINE_LISTEN", self.addr.to_string())
            .env("FACEGATE_ENGINE_DATA_DIR", &self.data_dir)
            .env("FACEGATE_MODELS_DIR", root.join(".facegate/models"))
            .env("FACEGATE_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .kill_on_drop(true);
        if std::env::var_os("ORT_DYLIB_PATH").is_none()
            && let Some(ort) = facegate_engine::face::find_onnxruntime(&root)
        {
            command.env("ORT_DYLIB_PATH", ort);
        }
        self.child = Some(command.spawn().expect("facegate engine starts"));
        let health = format!("{}/healthz", self.url());
        eventually("the engine answers", Duration::from_secs(120), || async {
            facegate_shared::probe::probe(&health).await.ok()
        })
        .await;
    }

    /// SIGKILL: no drain, no goodbye.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL the engine");
        }
    }
}

/// What the proxy did when it crashed the engine: the operation and the answer the worker
/// never got.
#[derive(Clone, Debug)]
struct Crash {
    operation: String,
    lost_answer: serde_json::Value,
}

/// What the proxy does to the calls it forwards.
#[derive(Debug, Default)]
struct Rules {
    /// Crash the engine once on this operation's answer.
    armed: Option<&'static str>,
    /// After that crash, refuse every call (the face service stays out of reach).
    down_after_crash: bool,
    /// Refuse these operations (`"*"`: all), as an unreachable face service would.
    refused: Vec<&'static str>,
    crashes: Vec<Crash>,
}

impl Rules {
    fn refuses(&self, operation: &str) -> bool {
        self.refused.iter().any(|r| *r == "*" || *r == operation)
    }
}

/// Forwards Rekognition calls to the engine, by its [`Rules`].
struct CrashProxy {
    addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
}

impl CrashProxy {
    async fn start(engine: Arc<tokio::sync::Mutex<Engine>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds");
        let addr = listener.local_addr().expect("the proxy's address");
        let rules: Arc<Mutex<Rules>> = Arc::default();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream = engine.lock().await.url();
        let shared = rules.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, engine, upstream, rules) = (
                    client.clone(),
                    engine.clone(),
                    upstream.clone(),
                    shared.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        forward(
                            request,
                            client.clone(),
                            upstream.clone(),
                            engine.clone(),
                            rules.clone(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CrashProxy { addr, rules }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap()
    }

    fn arm(&self, operation: &'static str) {
        self.rules().armed = Some(operation);
    }

    fn crashes(&self) -> Vec<Crash> {
        self.rules().crashes.clone()
    }
}

/// One call through the proxy.
async fn forward(
    request: Request<Incoming>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: String,
    engine: Arc<tokio::sync::Mutex<Engine>>,
    rules: Arc<Mutex<Rules>>,
) -> Result<Response<Full<Bytes>>, String> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("RekognitionService."))
        .unwrap_or_default()
        .to_string();
    if rules.lock().unwrap().refuses(&operation) {
        return Err(format!("{operation}: the face service is out of reach"));
    }
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    // The Host header stays the proxy's: the request is signed with it (SigV4).
    parts.uri = format!(
        "{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    )
    .parse()
    .map_err(|e| format!("{e}"))?;
    let answer = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let crash_now = {
        let mut rules = rules.lock().unwrap();
        let hit = rules.armed == Some(operation.as_str()) && parts.status.is_success();
        if hit {
            rules.armed = None;
            rules.crashes.push(Crash {
                operation: operation.clone(),
                lost_answer: serde_json::from_slice(&body).unwrap_or_default(),
            });
            if rules.down_after_crash {
                rules.refused = vec!["*"];
            }
        }
        hit
    };
    if !crash_now {
        return Ok(Response::from_parts(parts, Full::new(body)));
    }
    // The engine answered, so the change is in its log; it dies before the answer is out.
    engine.lock().await.kill().await;
    tokio::spawn(async move { engine.lock().await.run().await });
    Err(format!(
        "{operation}: the engine was SIGKILLed before it answered"
    ))
}

/// `facegate indexer` or `dedup` against the stack, calling the face service at `face_service`
/// (the proxy, the engine, or nothing), with `extra` settings.
fn spawn_role(
    test: &TestStack,
    role: &str,
    face_service: &str,
    extra: &[(&str, &str)],
    log: &Path,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the role's log");
    Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg(role)
        .env("FACEGATE_PREFIX", test.prefix.as_str())
        .env("FACEGATE_ENV", "local")
        .env("FACEGATE_LOG_FORMAT", "json")
        .env("AWS_ENDPOINT_URL_REKOGNITION", face_service)
        .env("FACEGATE_OPS_LISTEN", "127.0.0.1:0")
        .env("FACEGATE_WORKER_WAIT_SECS", "1")
        .env("FACEGATE_WORKER_VISIBILITY_SECS", "5")
        // Retries that outlast an engine loading its models (1 + 2 + 4 + 8 s).
        .env("FACEGATE_WORKER_RETRY_BASE_MS", "1000")
        .env("FACEGATE_WORKER_RETRY_MAX_SECS", "8")
        .env("FACEGATE_WORKER_DRAIN_SECS", "2")
        .env_remove("FACEGATE_BUCKET")
        .env_remove("FACEGATE_MAX_RECEIVE_COUNT")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("facegate {role} starts: {e}"))
}

/// Every face of the collection: face id -> external image id. Asked again while the engine
/// does not answer (the test restarts it).
async fn faces(
    rekognition: &aws_sdk_rekognition::Client,
    collection: &str,
) -> Vec<(String, String)> {
    eventually("ListFaces answered", Duration::from_secs(60), || async {
        let out = rekognition
            .list_faces()
            .collection_id(collection)
            .max_results(100)
            .send()
            .await
            .ok()?;
        Some(
            out.faces()
                .iter()
                .map(|f| {
                    (
                        f.face_id().unwrap_or_default().to_string(),
                        f.external_image_id().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        )
    })
    .await
}

/// The registration `upload` of `user`, once it is in `wanted` state.
async fn in_state(
    test: &TestStack,
    user: &str,
    upload: &UploadId,
    wanted: fn(&RegistrationState) -> bool,
) -> RegistrationRecord {
    eventually(
        &format!("registration {upload} of {user} in the wanted state"),
        Duration::from_secs(120),
        || async {
            let item = test
                .clients
                .dynamodb
                .get_item()
                .table_name(
                    test.names
                        .table(facegate_shared::config::Table::Registrations),
                )
                .key(
                    registrations::USER_ID,
                    aws_sdk_dynamodb::types::AttributeValue::S(user.into()),
                )
                .key(
                    registrations::UPLOAD_ID,
                    aws_sdk_dynamodb::types::AttributeValue::S(upload.to_string()),
                )
                .consistent_read(true)
                .send()
                .await
                .ok()?
                .item?;
            let record = RegistrationRecord::from_item(&item).ok()?;
            wanted(&record.state).then_some(record)
        },
    )
    .await
}

/// Waits until `queue`'s message is in its dead-letter queue.
async fn dead_lettered(test: &TestStack, queue: Queue) {
    let url = test.queue_url(&test.names.dlq(queue)).await;
    eventually(
        "the message dead-lettered",
        Duration::from_secs(60),
        || async {
            let attributes = test
                .clients
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .ok()?
                .attributes?;
            let visible: u64 = attributes
                .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                .parse()
                .ok()?;
            (visible > 0).then_some(())
        },
    )
    .await;
}

async fn upload(test: &TestStack, user: &str, photo: &str) -> UploadId {
    let upload = UploadId::random();
    test.clients
        .s3
        .put_object()
        .bucket(test.names.bucket())
        .key(format!("registrations/{user}/{upload}.jpg"))
        .content_type("image/jpeg")
        .body(fixture(photo).into())
        .send()
        .await
        .expect("PutObject");
    upload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_after_writing_but_before_answering_leaves_one_face_per_registration() {
    let test = TestStack::new().await;
    test.provision().await;
    let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("engine-crash-{}", uuid::Uuid::new_v4().simple()));
    let engine = Engine::start(&data_dir).await;
    let rekognition = AwsSettings {
        endpoint_url_rekognition: Some(engine.url()),
        ..AwsSettings::local()
    }
    .clients()
    .await
    .rekognition;
    let collection = test.names.collection();
    rekognition
        .create_collection()
        .collection_id(&collection)
        .send()
        .await
        .expect("CreateCollection on the engine");
    let engine = Arc::new(tokio::sync::Mutex::new(engine));
    let proxy = CrashProxy::start(engine.clone()).await;
    let logs = data_dir.with_extension("roles");
    std::fs::create_dir_all(&logs).expect("the roles' log folder");
    let _indexer = spawn_role(
        &test,
        "indexer",
        &proxy.url(),
        &[],
        &logs.join("indexer.log"),
    );
    let _dedup = spawn_role(&test, "dedup", &proxy.url(), &[], &logs.join("dedup.log"));

    // IndexFaces: the face is written, the engine dies, the indexer never hears of it.
    proxy.arm("IndexFaces");
    let first = upload(&test, "ann", "obama_1.jpg").await;
    let active = in_state(&test, "ann", &first, |s| *s == RegistrationState::Active).await;
    let crashes = proxy.crashes();
    assert_eq!(crashes.len(), 1, "the engine was killed under IndexFaces");
    let lost_face = crashes[0].lost_answer["FaceRecords"][0]["Face"]["FaceId"]
        .as_str()
        .expect("the lost answer named the face it indexed")
        .to_string();
    assert_eq!(
        active.face_id.as_deref(),
        Some(lost_face.as_str()),
        "the restarted engine kept the face, and the indexer adopted it rather than indexing again"
    );
    assert_eq!(
        faces(&rekognition, &collection).await,
        vec![(lost_face.clone(), first.to_string())],
        "one face, the registration's"
    );

    // DeleteFaces: ann registers again; dedup makes the new photo ACTIVE, the old one
    // REPLACED, and deletes the old face: the engine dies after writing the deletion.
    proxy.arm("DeleteFaces");
    let second = upload(&test, "ann", "obama_2.jpg").await;
    let new = in_state(&test, "ann", &second, |s| *s == RegistrationState::Active).await;
    in_state(&test, "ann", &first, |s| {
        matches!(s, RegistrationState::Replaced { .. })
    })
    .await;
    let new_face = new.face_id.expect("an ACTIVE registration has a face");
    let only_new = vec![(new_face.clone(), second.to_string())];
    eventually("the old face gone", Duration::from_secs(60), || async {
        (faces(&rekognition, &collection).await == only_new).then_some(())
    })
    .await;
    let crashes = proxy.crashes();
    assert_eq!(
        crashes.len(),
        2,
        "the engine was killed under DeleteFaces too"
    );
    assert_eq!(crashes[1].operation, "DeleteFaces");
    assert_eq!(
        crashes[1].lost_answer["DeletedFaces"],
        serde_json::json!([lost_face]),
        "the lost answer deleted the old face"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_file(data_dir.with_extension("log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_failed_while_the_engine_was_down_loses_its_faces_once_it_is_back() {
    // A registration whose last delivery finds the face service out of reach is marked FAILED,
    // and its face cannot be deleted then (the same state as a worker SIGKILLed between the
    // two). Once the face service is back, the dead-letter sweep must delete it.
    let test = TestStack::new().await;
    let two_deliveries = [("FACEGATE_MAX_RECEIVE_COUNT", "2")];
    let provisioned = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["provision", "--skip-collection", "--skip-user-pool"])
        .env("FACEGATE_PREFIX", test.prefix.as_str())
        .env("FACEGATE_ENV", "local")
        .env_remove("FACEGATE_BUCKET")
        .envs(two_deliveries)
        .output()
        .await
        .expect("facegate provision runs");
    assert!(
        provisioned.status.success(),
        "{}",
        String::from_utf8_lossy(&provisioned.stderr)
    );
    let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("engine-down-{}", uuid::Uuid::new_v4().simple()));
    let engine = Engine::start(&data_dir).await;
    let rekognition = AwsSettings {
        endpoint_url_rekognition: Some(engine.url()),
        ..AwsSettings::local()
    }
    .clients()
    .await
    .rekognition;
    let collection = test.names.collection();
    rekognition
        .create_collection()
        .collection_id(&collection)
        .send()
        .await
        .expect("CreateCollection on the engine");
    let proxy = CrashProxy::start(Arc::new(tokio::sync::Mutex::new(engine))).await;
    let logs = data_dir.with_extension("roles");
    std::fs::create_dir_all(&logs).expect("the roles' log folder");
    let settings = [
        two_deliveries[0],
        ("FACEGATE_INDEXER_DEAD_LETTER_SWEEP_SECS", "1"),
        ("FACEGATE_DEDUP_DEAD_LETTER_SWEEP_SECS", "1"),
    ];
    let _indexer = spawn_role(
        &test,
        "indexer",
        &proxy.url(),
        &settings,
        &logs.join("indexer.log"),
    );
    let _dedup = spawn_role(
        &test,
        "dedup",
        &proxy.url(),
        &settings,
        &logs.join("dedup.log"),
    );

    // The indexer: IndexFaces wrote the face and its answer was lost, then the face service
    // stayed out of reach through the last delivery. The face is in no record.
    {
        let mut rules = proxy.rules();
        rules.armed = Some("IndexFaces");
        rules.down_after_crash = true;
    }
    let bea = upload(&test, "bea", "grace_hopper_1.jpg").await;
    in_state(&test, "bea", &bea, |s| {
        matches!(s, RegistrationState::Failed { .. })
    })
    .await;
    assert_eq!(
        proxy.crashes().len(),
        1,
        "the engine was killed under IndexFaces"
    );
    assert_eq!(
        faces(&rekognition, &collection).await.len(),
        1,
        "a face left behind"
    );
    // The last delivery is over (and every retry inside it) once the message is dead-lettered.
    dead_lettered(&test, Queue::Uploads).await;
    assert_eq!(
        faces(&rekognition, &collection).await.len(),
        1,
        "still there"
    );
    proxy.rules().refused.clear();
    eventually(
        "the FAILED upload's unrecorded face deleted",
        Duration::from_secs(60),
        || async {
            faces(&rekognition, &collection)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;

    // Dedup-search: the face is indexed and recorded, then SearchFaces and DeleteFaces are out
    // of reach through the last delivery.
    proxy.rules().refused = vec!["SearchFaces", "DeleteFaces"];
    let cy = upload(&test, "cy", "kit_harington_1.jpg").await;
    let failed = in_state(&test, "cy", &cy, |s| {
        matches!(s, RegistrationState::Failed { .. })
    })
    .await;
    let face = failed.face_id.expect("the indexer recorded the face");
    dead_lettered(&test, Queue::Dedup).await;
    assert_eq!(
        faces(&rekognition, &collection).await,
        vec![(face, cy.to_string())],
        "the face is still there: dedup could not delete it"
    );
    proxy.rules().refused.clear();
    eventually(
        "the FAILED registration's face deleted",
        Duration::from_secs(60),
        || async {
            faces(&rekognition, &collection)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_file(data_dir.with_extension("log"));
}
