//! The Verify benchmark (`facegate bench verifier`): Verify-challenge latency (p50, p99) and
//! verifications per second with 1 and 8 concurrent clients against the local stack and face
//! engine, split into S3, face work and DynamoDB/SNS (from the `Server-Timing` header each
//! Verify answer carries), and the resident memory of the process, which runs the verifier.
//!
//! Each level runs three answers: the selfie photo as given (`--bench-selfie`, 1200x626 by
//! default), the same face as the sign-in page sends it (a 640x480 JPEG: its camera size), and
//! three liveness frames of the head-turn clip (640x360).
//!
//! It registers a throw-away user directly (IndexFaces plus the records the pipeline would
//! write), prepares one challenge per Verify (Create, then a real PUT of the selfie to the
//! presigned URL: not timed), then times only the `POST /cognito/verify` calls. The user is
//! erased afterwards. The face engine runs as its own process (`facegate engine`), so the
//! memory figure is the verifier's, not the models'.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_rekognition::error::DisplayErrorContext;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::Image;
use bytes::Bytes;
use chrono::Utc;
use facegate_shared::config::Table;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::objects::{ImageExtension, RegistrationUpload};
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::registration::{RegistrationRecord, RegistrationState};
use facegate_shared::stack::{Stack, StackArgs};
use facegate_shared::tables::users;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, VerifierClient};
use facegate_verifier::settings::VerifierSettings;

/// `facegate bench verifier`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub face: FaceServiceSettings,
    /// Verify calls per concurrency level.
    #[arg(long, env = "FACEGATE_BENCH_REQUESTS", default_value_t = 40)]
    pub bench_requests: usize,
    /// Concurrent clients, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub bench_concurrency: Vec<usize>,
    /// The registered photo.
    #[arg(long, default_value = "tests/fixtures/faces/obama_1.jpg")]
    pub bench_registration_photo: PathBuf,
    /// The selfie (the same person, another photo).
    #[arg(long, default_value = "tests/fixtures/faces/obama_2.jpg")]
    pub bench_selfie: PathBuf,
    /// Liveness rows: the head-turn clip whose frames answer the pose steps.
    #[arg(long, default_value = "tests/fixtures/faces/clip")]
    pub bench_clip: PathBuf,
    /// Liveness rows: the registered photo of the clip's person.
    #[arg(long, default_value = "tests/fixtures/faces/lin_manuel_miranda_1.png")]
    pub bench_clip_registration_photo: PathBuf,
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("reading {path}: {source}")]
    Photo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Request(#[from] ClientError),
}

fn setup(e: impl fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// What each Verify of a level answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `--bench-selfie` as it is (a photo, 1200x626 by default).
    Photo,
    /// The same face as the sign-in page sends it: a 640x480 JPEG of the camera.
    Page,
    /// Three liveness frames (640x360, the head-turn clip).
    Frames,
}

impl Answer {
    fn label(self) -> &'static str {
        match self {
            Answer::Photo => "photo",
            Answer::Page => "640x480",
            Answer::Frames => "3 frames",
        }
    }
}

/// Latency figures of one concurrency level, in milliseconds.
#[derive(Debug, Clone)]
pub struct LevelReport {
    pub answer: Answer,
    pub concurrency: usize,
    pub requests: usize,
    pub accepted: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_second: f64,
    /// Mean per phase: S3, face work, DynamoDB/SNS.
    pub s3_ms: f64,
    pub face_ms: f64,
    pub store_ms: f64,
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub levels: Vec<LevelReport>,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "answer    clients  verifies  accepted  p50 ms  p99 ms  verifies/s  s3 ms  face ms  dynamodb+sns ms"
        )?;
        for l in &self.levels {
            writeln!(
                f,
                "{:<8}  {:>7}  {:>8}  {:>8}  {:>6.1}  {:>6.1}  {:>10.2}  {:>5.1}  {:>7.1}  {:>15.1}",
                l.answer.label(),
                l.concurrency,
                l.requests,
                l.accepted,
                l.p50_ms,
                l.p99_ms,
                l.per_second,
                l.s3_ms,
                l.face_ms,
                l.store_ms
            )?;
        }
        for live in self.levels.iter().filter(|l| l.answer == Answer::Frames) {
            if let Some(selfie) = self
                .levels
                .iter()
                .find(|l| l.answer == Answer::Page && l.concurrency == live.concurrency)
            {
                writeln!(
                    f,
                    "{} client(s): 3 frames / one 640x480 selfie p50 {:.2}x, p99 {:.2}x",
                    live.concurrency,
                    live.p50_ms / selfie.p50_ms.max(f64::EPSILON),
                    live.p99_ms / selfie.p99_ms.max(f64::EPSILON)
                )?;
            }
        }
        write!(
            f,
            "verifier process RSS: {:.1} MiB now, {:.1} MiB peak",
            self.rss_mib, self.peak_rss_mib
        )
    }
}

/// Runs the benchmark and prints its table on stdout.
pub async fn main(args: BenchArgs) -> Result<(), BenchError> {
    let report = run(args).await?;
    println!("{report}");
    Ok(())
}

pub async fn run(args: BenchArgs) -> Result<BenchReport, BenchError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| BenchError::Photo {
            path: path.clone(),
            source,
        })
    };
    let registration = read(&args.bench_registration_photo)?;
    let selfie = Bytes::from(read(&args.bench_selfie)?);
    let stack = Stack::connect(&args.stack).await.map_err(setup)?;
    let page_selfie = page_capture(&stack, &selfie).await?;
    let limiter = Arc::new(FaceServiceLimiter::new(&args.face));
    let token = uuid::Uuid::new_v4().simple().to_string();
    let shutdown = CancellationToken::new();
    let running = facegate_verifier::spawn(
        stack.clone(),
        limiter,
        VerifierSettings::local(token.clone()),
        shutdown.clone(),
    )
    .await
    .map_err(setup)?;
    let user = UserId::parse(format!("bench-{}", &token[..8])).map_err(setup)?;
    register_active(&stack, &user, registration)
        .await
        .map_err(setup)?;
    let client = VerifierClient::new(running.url(), token.clone());

    // The same verifier code with liveness on: three frames per Verify instead of a selfie.
    let liveness_settings = VerifierSettings {
        liveness: facegate_verifier::liveness::LivenessPolicy::Active,
        ..VerifierSettings::local(token.clone())
    };
    let live = facegate_verifier::spawn(
        stack.clone(),
        Arc::new(FaceServiceLimiter::new(&args.face)),
        liveness_settings,
        shutdown.clone(),
    )
    .await
    .map_err(setup)?;
    let live_client = VerifierClient::new(live.url(), token.clone());
    let clip = crate::liveness::Clip::load(&args.bench_clip).map_err(setup)?;
    let clip_photo = read(&args.bench_clip_registration_photo)?;
    // One user per client, each with a camera of its own, so that no user sees a frame again
    // within the few challenges the replay check remembers.
    let max_clients = args
        .bench_concurrency
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let mut live_users = Vec::new();
    for n in 0..max_clients {
        let live_user = UserId::parse(format!("bench-{}-live{n}", &token[..8])).map_err(setup)?;
        register_active(&stack, &live_user, clip_photo.clone())
            .await
            .map_err(setup)?;
        live_users.push(live_user);
    }

    let mut cameras: Vec<_> = live_users
        .iter()
        .map(|u| (u.clone(), Some(crate::liveness::Camera::new(&clip))))
        .collect();
    let mut levels = Vec::new();
    for &concurrency in &args.bench_concurrency {
        let concurrency = concurrency.max(1);
        for (answer, picture) in [(Answer::Photo, &selfie), (Answer::Page, &page_selfie)] {
            let mut selfie_users = [(user.clone(), None)];
            let mut report = level(
                &client,
                &mut selfie_users,
                picture,
                concurrency,
                args.bench_requests,
            )
            .await?;
            report.answer = answer;
            levels.push(report);
        }
        let mut report = level(
            &live_client,
            &mut cameras[..concurrency],
            &selfie,
            concurrency,
            args.bench_requests,
        )
        .await?;
        report.answer = Answer::Frames;
        levels.push(report);
    }
    for live_user in &live_users {
        facegate_verifier::erase::erase_user(&live.verifier, live_user)
            .await
            .map_err(setup)?;
    }
    let (rss_mib, peak_rss_mib) = memory();
    facegate_verifier::erase::erase_user(&running.verifier, &user)
        .await
        .map_err(setup)?;
    shutdown.cancel();
    Ok(BenchReport {
        levels,
        rss_mib,
        peak_rss_mib,
    })
}

/// One concurrency level: prepare `requests` challenges, then time their Verify calls. The
/// challenges go round the `users`; a user with a camera answers liveness challenges with its
/// frames, the others with `selfie`.
async fn level(
    client: &VerifierClient,
    users: &mut [(UserId, Option<crate::liveness::Camera<'_>>)],
    selfie: &Bytes,
    concurrency: usize,
    requests: usize,
) -> Result<LevelReport, BenchError> {
    let mut prepared = Vec::with_capacity(requests);
    for n in 0..requests {
        let slot = n % users.len();
        let user = users[slot].0.clone();
        let challenge = client.create(user.as_str(), &[]).await?;
        // Each picture is new bytes to the engine, as every real sign-in's is.
        match (&challenge.steps, &mut users[slot].1) {
            (Some(steps), Some(camera)) => {
                let steps: facegate_verifier::liveness::Sequence = steps.parse().map_err(setup)?;
                for (url, frame) in challenge.frame_urls.iter().zip(camera.frames(&steps)) {
                    client
                        .put_presigned(url, crate::client::fresh_copy(&frame))
                        .await?;
                }
            }
            _ => {
                client
                    .put_presigned(&challenge.url, crate::client::fresh_copy(selfie))
                    .await?;
            }
        }
        prepared.push((user, challenge));
    }
    // Answered oldest first, as a user's successive sign-ins are.
    prepared.reverse();
    let queue = Arc::new(tokio::sync::Mutex::new(prepared));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let client = client.clone();
        clients.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let Some((user, challenge)) = queue.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                let (accepted, timing) = client
                    .verify(user.as_str(), &challenge, &challenge.key)
                    .await?;
                samples.push((t.elapsed(), accepted, timing));
            }
            Ok::<_, BenchError>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(joined) = clients.join_next().await {
        samples.extend(joined.map_err(setup)??);
    }
    let wall = started.elapsed();
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.0.as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let mean = |name: &str| {
        let values: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.2.get(name).copied())
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    Ok(LevelReport {
        answer: Answer::Photo,
        concurrency,
        requests: samples.len(),
        accepted: samples.iter().filter(|s| s.1).count(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        per_second: samples.len() as f64 / wall.as_secs_f64(),
        s3_ms: mean("s3"),
        face_ms: mean("face"),
        store_ms: mean("store"),
    })
}

/// `photo` as the sign-in page sends it: the 4:3 window around its face, scaled to 640x480 (the
/// camera size the page asks for) and encoded as the page's `canvas.toBlob` does (JPEG, 0.92).
async fn page_capture(stack: &Stack, photo: &[u8]) -> Result<Bytes, BenchError> {
    let detected = stack
        .clients
        .rekognition
        .detect_faces()
        .image(Image::builder().bytes(Blob::new(photo.to_vec())).build())
        .send()
        .await
        .map_err(|e| {
            setup(format!(
                "DetectFaces of the selfie: {}",
                DisplayErrorContext(e)
            ))
        })?;
    let face = detected
        .face_details()
        .first()
        .and_then(|f| f.bounding_box())
        .ok_or_else(|| setup("the selfie shows no face"))?;
    let image = image::load_from_memory(photo).map_err(setup)?;
    let (width, height) = (image.width() as f32, image.height() as f32);
    let (window_w, window_h) = if width * 3.0 > height * 4.0 {
        (height * 4.0 / 3.0, height)
    } else {
        (width, width * 3.0 / 4.0)
    };
    let centre = |start: Option<f32>, size: Option<f32>, of: f32| {
        (start.unwrap_or(0.0) + size.unwrap_or(0.0) / 2.0) * of
    };
    let left =
        (centre(face.left(), face.width(), width) - window_w / 2.0).clamp(0.0, width - window_w);
    let top =
        (centre(face.top(), face.height(), height) - window_h / 2.0).clamp(0.0, height - window_h);
    let window = image
        .crop_imm(left as u32, top as u32, window_w as u32, window_h as u32)
        .resize_exact(640, 480, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
        .encode_image(&window.to_rgb8())
        .map_err(setup)?;
    Ok(Bytes::from(jpeg))
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// VmRSS and VmHWM of this process, in MiB (Linux; zero elsewhere).
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Makes `user` able to sign in with the face in `photo`, as the registration pipeline would:
/// the photo under `registrations/`, its face indexed, an ACTIVE registration record and the
/// users item pointing at it. Returns the face id. For the benchmark and for tests; the real
/// path is the indexer and dedup-search.
pub async fn register_active(
    stack: &Stack,
    user: &UserId,
    photo: Vec<u8>,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let upload = RegistrationUpload {
        user_id: user.clone(),
        upload_id: UploadId::random(),
        extension: ImageExtension::Jpg,
    };
    let clients = &stack.clients;
    let indexed = clients
        .rekognition
        .index_faces()
        .collection_id(stack.names.collection())
        .image(Image::builder().bytes(Blob::new(photo)).build())
        .external_image_id(upload.upload_id.as_str())
        .max_faces(1)
        .send()
        .await?;
    let face_id = indexed
        .face_records()
        .first()
        .and_then(|r| r.face())
        .and_then(|f| f.face_id())
        .ok_or("IndexFaces found no face in the registration photo")?
        .to_string();
    let now = Utc::now();
    let record = RegistrationRecord {
        state: RegistrationState::Active,
        face_id: Some(face_id.clone()),
        ..RegistrationRecord::pending(
            user.clone(),
            upload.upload_id.clone(),
            stack.names.bucket().to_string(),
            upload.key(),
            now,
        )
    };
    clients
        .dynamodb
        .put_item()
        .table_name(stack.table(Table::Registrations))
        .set_item(Some(record.to_item()))
        .send()
        .await?;
    let s = |v: &str| AttributeValue::S(v.to_string());
    clients
        .dynamodb
        .put_item()
        .table_name(stack.table(Table::Users))
        .item(users::USER_ID, s(user.as_str()))
        .item(users::ACTIVE_UPLOAD_ID, s(upload.upload_id.as_str()))
        .item(users::ACTIVE_FACE_ID, s(&face_id))
        .item(users::UPDATED_AT, s(&now.to_rfc3339()))
        .send()
        .await?;
    Ok(face_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
