//! The registration pipeline under test: a face engine in this process (real models, a fresh
//! data folder), a stack of one's own provisioned by the real `facegate provision` (collection
//! included), the roles run in-process or as real `facegate indexer|dedup` processes, and the
//! readings the tests assert on (records, the users item, the collection, queue depths).
//!
//! Needs the emulator (`scripts/stack.sh start`) and `scripts/setup.sh` (models, ONNX Runtime).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use facegate_engine::face::{self, FaceModels, ModelSettings};
use facegate_engine::{EngineArgs, RunningEngine};
use facegate_shared::aws::AwsSettings;
use facegate_shared::config::{Queue, StackSettings, Table};
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::ops::Health;
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::registration::RegistrationRecord;
use facegate_shared::stack::{Stack, StackArgs};
use facegate_shared::tables::{registrations, users};
use facegate_shared::worker::WorkerSettings;
use facegate_workers::{DedupSettings, IndexerSettings};
use image::{DynamicImage, GenericImage, ImageEncoder};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestStack, eventually};

/// Calls per second to the face service in tests: the engine, not the quota, is the limit.
pub const FACE_CALLS_PER_SECOND: u32 = 500;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture photo's bytes (`tests/fixtures/faces/<name>`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = workspace_root().join("tests/fixtures/faces").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture photo, grouped by person (`<person>_<n>.<ext>`), photos in name order.
pub fn fixtures_by_person() -> Vec<(String, Vec<String>)> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("tests/fixtures/faces"))
        .expect("the fixtures folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg") || n.ends_with(".png"))
        .collect();
    names.sort();
    let mut people: Vec<(String, Vec<String>)> = Vec::new();
    for name in names {
        let person = name
            .rsplit_once('_')
            .expect("<person>_<n>.<ext>")
            .0
            .to_string();
        match people.last_mut() {
            Some((last, photos)) if *last == person => photos.push(name),
            _ => people.push((person, vec![name])),
        }
    }
    people
}

fn model_settings() -> ModelSettings {
    let root = workspace_root();
    ModelSettings {
        models_dir: root.join(".facegate/models"),
        ort_dylib_path: std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .or_else(|| face::find_onnxruntime(&root)),
        workers: 2,
    }
}

/// The models, loaded once per test binary (ONNX Runtime allows one environment per process).
fn models() -> Arc<FaceModels> {
    static MODELS: OnceLock<Arc<FaceModels>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            Arc::new(
                FaceModels::load(&model_settings())
                    .expect("face models load (run scripts/setup.sh first)"),
            )
        })
        .clone()
}

/// How a pipeline's roles retry: short, so that tests of retries and dead letters stay short.
#[derive(Clone, Debug)]
pub struct Pacing {
    pub max_receive_count: u32,
    pub visibility_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_secs: u64,
    pub drain_secs: u64,
    pub max_in_flight: usize,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            max_receive_count: 4,
            visibility_secs: 6,
            retry_base_ms: 200,
            retry_max_secs: 2,
            drain_secs: 5,
            max_in_flight: 4,
        }
    }
}

/// One stack with its engine, provisioned and connected.
pub struct Pipeline {
    pub test: TestStack,
    stack: Option<Stack>,
    pub engine: RunningEngine,
    pub pacing: Pacing,
    /// More settings for every `facegate` command of this pipeline (provisioning passes the
    /// sign-in ones on to the trigger Lambda).
    extra_env: Vec<(String, String)>,
    _data_dir: TempDir,
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Pipeline {
    /// Starts an engine, provisions a new stack with `facegate provision` and connects to it.
    pub async fn start(pacing: Pacing) -> Self {
        Self::start_with_env(pacing, &[]).await
    }

    /// [`Self::start`] with more settings for every `facegate` command, provisioning included.
    pub async fn start_with_env(pacing: Pacing, extra_env: &[(&str, &str)]) -> Self {
        let data_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pipeline-engine-{}", uuid::Uuid::new_v4().simple()));
        let models = tokio::task::spawn_blocking(models)
            .await
            .expect("loading models");
        let engine = facegate_engine::spawn_with_models(
            EngineArgs::local(data_dir.clone(), model_settings()),
            models,
        )
        .await
        .expect("the engine starts");
        let test = TestStack::new().await;
        let mut pipeline = Self {
            stack: None,
            test,
            engine,
            pacing,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _data_dir: TempDir(data_dir),
        };
        let output = pipeline
            .command(&["provision"])
            .output()
            .await
            .expect("facegate provision runs");
        assert!(
            output.status.success(),
            "facegate provision failed ({}); is the emulator running?\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        pipeline.stack = Some(
            Stack::connect(&pipeline.stack_args())
                .await
                .expect("the provisioned stack connects"),
        );
        pipeline
    }

    /// The connected stack (set once provisioning is done).
    pub fn stack(&self) -> &Stack {
        self.stack.as_ref().expect("connected in Pipeline::start")
    }

    pub fn stack_args(&self) -> StackArgs {
        StackArgs {
            aws: AwsSettings {
                endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
                endpoint_url_rekognition: Some(self.engine.url()),
                ..AwsSettings::local()
            },
            stack: StackSettings {
                max_receive_count: self.pacing.max_receive_count,
                ..StackSettings::with_prefix(self.test.prefix.clone())
            },
        }
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            max_in_flight: self.pacing.max_in_flight,
            wait_secs: 1,
            visibility_secs: self.pacing.visibility_secs,
            handler_timeout_secs: 60,
            retry_base_ms: self.pacing.retry_base_ms,
            retry_max_secs: self.pacing.retry_max_secs,
            drain_secs: self.pacing.drain_secs,
        }
    }

    /// `facegate <args>` against this stack and engine, with the test pacing.
    pub fn command(&self, args: &[&str]) -> Command {
        let p = &self.pacing;
        let mut command = Command::new(env!("CARGO_BIN_EXE_facegate"));
        command
            .args(args)
            .env("FACEGATE_PREFIX", self.test.prefix.as_str())
            .env("FACEGATE_ENV", "local")
            .env("FACEGATE_LOG_FORMAT", "json")
            .env("AWS_ENDPOINT_URL_REKOGNITION", self.engine.url())
            .env(
                "FACEGATE_MAX_RECEIVE_COUNT",
                p.max_receive_count.to_string(),
            )
            .env(
                "FACEGATE_FACE_CALLS_PER_SECOND",
                FACE_CALLS_PER_SECOND.to_string(),
            )
            .env(
                "FACEGATE_FACE_CALLS_BURST",
                FACE_CALLS_PER_SECOND.to_string(),
            )
            .env("FACEGATE_WORKER_MAX_IN_FLIGHT", p.max_in_flight.to_string())
            .env("FACEGATE_WORKER_WAIT_SECS", "1")
            .env(
                "FACEGATE_WORKER_VISIBILITY_SECS",
                p.visibility_secs.to_string(),
            )
            .env("FACEGATE_WORKER_RETRY_BASE_MS", p.retry_base_ms.to_string())
            .env(
                "FACEGATE_WORKER_RETRY_MAX_SECS",
                p.retry_max_secs.to_string(),
            )
            .env("FACEGATE_WORKER_DRAIN_SECS", p.drain_secs.to_string())
            .env("FACEGATE_INDEXER_DEAD_LETTER_SWEEP_SECS", "2")
            .env("FACEGATE_DEDUP_DEAD_LETTER_SWEEP_SECS", "2")
            .env("FACEGATE_OPS_LISTEN", "127.0.0.1:0")
            .env_remove("FACEGATE_BUCKET")
            // The single-selfie flow unless a test asks for liveness: the default (`active`)
            // is for new stacks, and the tests that sign in with one photo say which they are.
            .env("FACEGATE_LIVENESS_POLICY", "off")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        command
    }

    /// `facegate indexer` or `facegate dedup` as a child process; its log goes to `log`.
    pub fn spawn_role(&self, role: &str, log: &Path) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the role's log file");
        self.command(&[role])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("facegate {role} starts: {e}"))
    }

    /// Indexer and dedup-search in this process, until the returned token is cancelled.
    pub fn run_roles(&self, indexer: IndexerSettings, dedup: DedupSettings) -> RunningRoles {
        self.run(Some(indexer), Some(dedup))
    }

    /// The indexer alone: dedup-search is down.
    pub fn run_indexer(&self, indexer: IndexerSettings) -> RunningRoles {
        self.run(Some(indexer), None)
    }

    /// Dedup-search alone.
    pub fn run_dedup(&self, dedup: DedupSettings) -> RunningRoles {
        self.run(None, Some(dedup))
    }

    fn run(&self, indexer: Option<IndexerSettings>, dedup: Option<DedupSettings>) -> RunningRoles {
        let shutdown = CancellationToken::new();
        let limiter = Arc::new(FaceServiceLimiter::new(&FaceServiceSettings::per_process(
            FACE_CALLS_PER_SECOND.try_into().expect("non-zero"),
            FACE_CALLS_PER_SECOND.try_into().expect("non-zero"),
        )));
        let mut tasks = Vec::new();
        if let Some(indexer) = indexer {
            tasks.push(tokio::spawn(facegate_workers::run_indexer(
                self.stack().clone(),
                limiter.clone(),
                self.worker_settings(),
                indexer,
                Health::default(),
                shutdown.clone(),
            )));
        }
        if let Some(dedup) = dedup {
            tasks.push(tokio::spawn(facegate_workers::run_dedup(
                self.stack().clone(),
                limiter,
                self.worker_settings(),
                dedup,
                Health::default(),
                shutdown.clone(),
            )));
        }
        RunningRoles { shutdown, tasks }
    }

    pub fn bucket(&self) -> &str {
        self.stack().names.bucket()
    }

    /// Uploads a registration photo; returns its upload id.
    pub async fn upload(&self, user: &str, bytes: Vec<u8>, extension: &str) -> UploadId {
        let upload = UploadId::random();
        let content_type = if extension == "png" {
            "image/png"
        } else {
            "image/jpeg"
        };
        self.put(
            &format!("registrations/{user}/{upload}.{extension}"),
            bytes,
            content_type,
        )
        .await;
        upload
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) {
        self.stack()
            .clients
            .s3
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject {key}: {e:?}"));
    }

    pub async fn registration(&self, user: &str, upload: &UploadId) -> Option<RegistrationRecord> {
        let item = self
            .stack()
            .clients
            .dynamodb
            .get_item()
            .table_name(self.stack().table(Table::Registrations))
            .key(registrations::USER_ID, AttributeValue::S(user.into()))
            .key(
                registrations::UPLOAD_ID,
                AttributeValue::S(upload.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem registration")
            .item?;
        Some(RegistrationRecord::from_item(&item).expect("a valid registration item"))
    }

    /// Every registration of the stack (a scan: test stacks are small).
    pub async fn all_registrations(&self) -> Vec<RegistrationRecord> {
        self.stack()
            .clients
            .dynamodb
            .scan()
            .table_name(self.stack().table(Table::Registrations))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("Scan registrations")
            .iter()
            .map(|item| RegistrationRecord::from_item(item).expect("a valid registration item"))
            .collect()
    }

    /// Polls the registration until it is in a final state.
    pub async fn final_state(
        &self,
        user: &str,
        upload: &UploadId,
        within: Duration,
    ) -> RegistrationRecord {
        eventually(
            &format!("registration {user}/{upload} to be final"),
            within,
            || async {
                self.registration(user, upload)
                    .await
                    .filter(|r| r.state.is_final())
            },
        )
        .await
    }

    /// The users item's active upload id.
    pub async fn active_upload(&self, user: &str) -> Option<String> {
        let item = self
            .stack()
            .clients
            .dynamodb
            .get_item()
            .table_name(self.stack().table(Table::Users))
            .key(users::USER_ID, AttributeValue::S(user.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem user")
            .item?;
        item.get(users::ACTIVE_UPLOAD_ID)?.as_s().ok().cloned()
    }

    /// Every face of the collection: face id -> external image id.
    pub async fn faces(&self) -> HashMap<String, String> {
        let mut faces = HashMap::new();
        let mut token = None;
        loop {
            let out = self
                .stack()
                .clients
                .rekognition
                .list_faces()
                .collection_id(self.stack().names.collection())
                .max_results(1000)
                .set_next_token(token)
                .send()
                .await
                .expect("ListFaces");
            for face in out.faces() {
                faces.insert(
                    face.face_id().unwrap_or_default().to_string(),
                    face.external_image_id().unwrap_or_default().to_string(),
                );
            }
            token = out.next_token;
            if token.is_none() {
                return faces;
            }
        }
    }

    /// Messages waiting plus messages in flight (approximate, as SQS counts them).
    pub async fn depth(&self, queue_url: &str) -> (u64, u64) {
        let depth = self
            .stack()
            .queue_depth(queue_url)
            .await
            .expect("GetQueueAttributes");
        (depth.waiting, depth.in_flight)
    }

    /// Waits until the work queues hold nothing, waiting or in flight.
    pub async fn drained(&self, within: Duration) {
        eventually(
            "the uploads and dedup queues to be empty",
            within,
            || async {
                let uploads = self.depth(self.stack().queue_url(Queue::Uploads)).await;
                let dedup = self.depth(self.stack().queue_url(Queue::Dedup)).await;
                (uploads == (0, 0) && dedup == (0, 0)).then_some(())
            },
        )
        .await
    }

    /// A new queue subscribed to the `security-alerts` topic (raw delivery off, as provisioned
    /// subscriptions); its URL.
    pub async fn subscribe_security_alerts(&self) -> String {
        let name = format!("{}-test-alerts", self.test.prefix);
        let sqs = &self.stack().clients.sqs;
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        self.stack()
            .clients
            .sns
            .subscribe()
            .topic_arn(
                self.stack()
                    .topic_arn(facegate_shared::config::Topic::SecurityAlerts),
            )
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .expect("Subscribe");
        url
    }
}

/// Roles running in this process.
pub struct RunningRoles {
    pub shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningRoles {
    /// Stops them and waits until they have drained.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.expect("a role task ends cleanly");
        }
    }
}

/// A user id for `person` that no other stack shares (readable in logs).
pub fn user_of(person: &str) -> UserId {
    UserId::parse(format!("{person}-user")).expect("a valid user id")
}

pub fn jpeg(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&image.to_rgb8())
        .expect("JPEG encoding");
    out
}

/// A blank grey PNG: an image without a face.
pub fn blank_png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(480, 360, image::Rgb([128, 128, 128]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(image.as_raw(), 480, 360, image::ExtendedColorType::Rgb8)
        .expect("PNG encoding");
    out
}

/// Two fixture faces side by side in one JPEG.
pub fn two_faces_jpeg() -> Vec<u8> {
    let a = image::load_from_memory(&fixture("obama_1.jpg")).expect("obama_1 decodes");
    let b = image::load_from_memory(&fixture("biden_1.jpg")).expect("biden_1 decodes");
    let height = a.height().min(b.height()).min(600);
    let a = a.resize(10_000, height, image::imageops::FilterType::Triangle);
    let b = b.resize(10_000, height, image::imageops::FilterType::Triangle);
    let mut canvas = DynamicImage::new_rgb8(a.width() + b.width(), height);
    canvas.copy_from(&a, 0, 0).expect("fits");
    canvas.copy_from(&b, a.width(), 0).expect("fits");
    jpeg(&canvas, 90)
}

/// A variant of a decoded photo that is a different upload of the same face: `n` picks a
/// horizontal flip, a crop of up to 8% per side, a scale and a JPEG quality.
pub fn variant(photo: &DynamicImage, n: usize) -> Vec<u8> {
    let mut image = if n % 2 == 1 {
        photo.fliph()
    } else {
        photo.clone()
    };
    let crop = (n / 2 % 5) as u32 * 2; // percent per side: 0, 2, 4, 6, 8
    let (w, h) = (image.width(), image.height());
    let (dx, dy) = (w * crop / 100, h * crop / 100);
    image = image.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy);
    let scale = [1.0, 0.9, 0.8][n / 10 % 3];
    if scale < 1.0 {
        let (nw, nh) = (
            (image.width() as f32 * scale) as u32,
            (image.height() as f32 * scale) as u32,
        );
        image = image.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    }
    jpeg(&image, 80 + (n % 4) as u8 * 5)
}
