//! `facegate bench pipeline`: the registration pipeline's throughput and latency, and the
//! worker runtime's own overhead, on whatever stack and face engine the AWS settings point at.
//!
//! - **Pipeline**: for each number of handlers in flight (1, 4, 8, 16 by default), a fresh set
//!   of users each uploads one registration photo (variants of the photos folder, each made new
//!   bytes so the engine analyses every upload) at once; the
//!   indexer and dedup-search run in this process. Registrations per second (all uploads to
//!   the last ACTIVE) and upload-to-ACTIVE latency (p50, p99; from the end of the PutObject to
//!   the record's `updated_at`). Dedup runs with policy `flag`, so that registrations of the
//!   same person by different users all end ACTIVE: every registration takes the full path
//!   (DetectFaces, IndexFaces, SearchFaces, the activation transaction), and most also publish
//!   a duplicate alert.
//! - **Runtime overhead**: messages per second through the worker runtime with a handler that
//!   does nothing, against a plain receive-then-batch-delete loop on the same queue in the same
//!   run; their ratio is the runtime's cost (heartbeat tasks, backoff bookkeeping, metrics).
//! - **RSS** of this process at the end, and its peak.
//!
//! Each figure is the median of `--repeats` runs. The stack is provisioned under a fresh prefix
//! (`fg-bench-<random>`), so the benchmark never touches anyone's data.
//!
//! The photos and their variants ([`load_photos`], [`variant`]) are also what `facegate bench
//! soak` registers and signs in with.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use facegate_shared::aws::AwsSettings;
use facegate_shared::config::{Prefix, StackSettings};
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::measure::{Memory, percentile};
use facegate_shared::ops::Health;
use facegate_shared::provision::{self, Plan};
use facegate_shared::rate_limit::{FaceServiceLimiter, FaceServiceSettings};
use facegate_shared::registration::RegistrationState;
use facegate_shared::stack::{Stack, StackArgs};
use facegate_shared::worker::{BoxError, Handler, HandlerError, Message, Worker, WorkerSettings};
use image::{DynamicImage, ImageEncoder};
use tokio_util::sync::CancellationToken;

use facegate_workers::dedup::{DedupSettings, DuplicatePolicy, run_dedup};
use facegate_workers::indexer::{IndexerSettings, run_indexer};
use facegate_workers::store::RegistrationStore;

/// `facegate bench pipeline`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchPipelineArgs {
    #[command(flatten)]
    pub aws: AwsSettings,
    /// Folder of photos named `<person>_<n>.(jpg|png)`.
    #[arg(
        long,
        env = "FACEGATE_BENCH_PIPELINE_PHOTOS",
        default_value = "tests/fixtures/faces"
    )]
    pub photos: PathBuf,
    /// Registrations per pipeline run.
    #[arg(
        long,
        env = "FACEGATE_BENCH_PIPELINE_REGISTRATIONS",
        default_value_t = 100
    )]
    pub registrations: usize,
    /// Handlers in flight per role; one pipeline run each.
    #[arg(long, env = "FACEGATE_BENCH_PIPELINE_IN_FLIGHT", value_delimiter = ',', default_values_t = [1, 4, 8, 16])]
    pub in_flight: Vec<usize>,
    /// Runs of each measurement; the median is reported.
    #[arg(long, env = "FACEGATE_BENCH_PIPELINE_REPEATS", default_value_t = 3)]
    pub repeats: usize,
    /// Messages per run of the runtime-overhead measurement.
    #[arg(
        long,
        env = "FACEGATE_BENCH_PIPELINE_NOOP_MESSAGES",
        default_value_t = 1000
    )]
    pub noop_messages: usize,
    /// Face-service calls per second allowed (the engine, not a quota, should be the limit).
    #[arg(long, env = "FACEGATE_BENCH_PIPELINE_FACE_CALLS_PER_SECOND", default_value_t = NonZeroU32::new(1000).expect("non-zero"))]
    pub face_calls_per_second: NonZeroU32,
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("provisioning the benchmark stack")]
    Provision(#[from] provision::ProvisionError),
    #[error("connecting to the benchmark stack")]
    Stack(#[from] facegate_shared::stack::StackError),
    #[error("reading photos from {dir}")]
    Photos {
        dir: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("{what}")]
    Aws {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{0}")]
    Run(String),
}

/// One pipeline run's figures.
#[derive(Clone, Copy, Debug, Default)]
struct PipelineRun {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs every measurement and returns the report to print.
pub async fn run(args: BenchPipelineArgs) -> Result<String, BenchError> {
    let prefix: Prefix = format!(
        "fg-bench-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .parse()
    .map_err(|e: facegate_shared::config::NameError| BenchError::Run(e.to_string()))?;
    let settings = StackSettings::with_prefix(prefix.clone());
    provision::apply(&Plan::new(&settings, true), &args.aws).await?;
    let stack = Stack::connect(&StackArgs {
        aws: args.aws.clone(),
        stack: settings,
    })
    .await?;
    let photos = load_photos(&args.photos)?;

    let mut report = format!(
        "facegate bench pipeline: stack {prefix}, {} registrations per run, median of {} runs\n\n",
        args.registrations, args.repeats
    );
    report.push_str("handlers in flight | registrations/s | upload->ACTIVE p50 | p99\n");
    report.push_str("---: | ---: | ---: | ---:\n");
    for &in_flight in &args.in_flight {
        let mut runs = Vec::new();
        for repeat in 0..args.repeats.max(1) {
            let run = pipeline_run(&stack, &args, &photos, in_flight, repeat).await?;
            tracing::info!(in_flight, repeat, ?run, "pipeline run");
            runs.push(run);
        }
        let per_second = median(runs.iter().map(|r| r.per_second).collect());
        let p50 = median_duration(runs.iter().map(|r| r.p50).collect());
        let p99 = median_duration(runs.iter().map(|r| r.p99).collect());
        report.push_str(&format!(
            "{in_flight} | {per_second:.2} | {} ms | {} ms\n",
            p50.as_millis(),
            p99.as_millis()
        ));
    }

    let queue_url = noop_queue(&stack, &prefix).await?;
    let mut runtime = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..args.repeats.max(1) {
        fill(&stack.clients.sqs, &queue_url, args.noop_messages).await?;
        runtime.push(noop_worker_run(&stack, &queue_url, args.noop_messages).await);
        fill(&stack.clients.sqs, &queue_url, args.noop_messages).await?;
        plain.push(plain_loop_run(&stack.clients.sqs, &queue_url, args.noop_messages).await?);
    }
    let runtime = median(runtime);
    let plain = median(plain);
    report.push_str(&format!(
        "\nruntime overhead ({} messages, no-op handler, 10 in flight): worker runtime {runtime:.0} msg/s, \
         plain receive+batch-delete loop {plain:.0} msg/s, ratio {:.2}\n",
        args.noop_messages,
        runtime / plain
    ));
    let memory = Memory::of_self();
    report.push_str(&format!(
        "process RSS at the end {} MiB, peak {} MiB (this process: the workers, the benchmark \
         driver, and the engine too if it runs in-process)\n",
        memory.rss_kib / 1024,
        memory.peak_kib / 1024
    ));
    let _ = stack
        .clients
        .sqs
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await;
    Ok(report)
}

/// A decoded photo and whose face it shows.
#[derive(Clone, Debug)]
pub struct Photo {
    /// `<person>` of the file name `<person>_<n>.(jpg|png)`.
    pub person: String,
    pub image: DynamicImage,
}

/// Decoded photos of the folder, in file-name order.
pub fn load_photos(dir: &PathBuf) -> Result<Vec<Photo>, BenchError> {
    let error = |source: BoxError| BenchError::Photos {
        dir: dir.clone(),
        source,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| error(Box::new(e)))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    names.sort();
    let photos = names
        .iter()
        .map(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            // A file without `_<n>` is a person of its own.
            let person = stem.rsplit_once('_').map_or(stem, |(person, _)| person);
            let bytes = std::fs::read(p).map_err(|e| error(Box::new(e)))?;
            let image = image::load_from_memory(&bytes).map_err(|e| error(Box::new(e)))?;
            Ok::<_, BenchError>(Photo {
                person: person.to_string(),
                image,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if photos.is_empty() {
        return Err(error("no .jpg or .png photos".into()));
    }
    Ok(photos)
}

/// A JPEG of `photo`, mirrored on odd `n` and re-encoded at a quality that depends on `n`, so
/// that every upload is a different file.
pub fn variant(photo: &DynamicImage, n: usize) -> Vec<u8> {
    let image = if n % 2 == 1 {
        photo.fliph()
    } else {
        photo.clone()
    };
    let mut out = Vec::new();
    let quality = 80 + (n % 4) as u8 * 5;
    let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            image.to_rgb8().as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        );
    match encoded {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

async fn pipeline_run(
    stack: &Stack,
    args: &BenchPipelineArgs,
    photos: &[Photo],
    in_flight: usize,
    repeat: usize,
) -> Result<PipelineRun, BenchError> {
    let uploads: Vec<(UserId, UploadId, Vec<u8>)> = (0..args.registrations)
        .map(|i| {
            let user = UserId::parse(format!("bench-{in_flight}-{repeat}-{i}"))
                .map_err(|e| BenchError::Run(e.to_string()))?;
            // New bytes every time: a run must not meet the engine's cache of an earlier
            // run's analyses of the same variant.
            let photo = variant(&photos[i % photos.len()].image, i / photos.len());
            Ok((
                user,
                UploadId::random(),
                crate::client::fresh_copy(&photo).to_vec(),
            ))
        })
        .collect::<Result<_, BenchError>>()?;

    let shutdown = CancellationToken::new();
    let limiter = Arc::new(FaceServiceLimiter::new(&FaceServiceSettings::per_process(
        args.face_calls_per_second,
        args.face_calls_per_second,
    )));
    let worker = WorkerSettings {
        max_in_flight: in_flight,
        wait_secs: 1,
        ..WorkerSettings::default()
    };
    let dedup = DedupSettings {
        policy: DuplicatePolicy::Flag,
        ..DedupSettings::default()
    };
    let roles = [
        tokio::spawn(run_indexer(
            stack.clone(),
            limiter.clone(),
            worker.clone(),
            IndexerSettings::default(),
            Health::default(),
            shutdown.clone(),
        )),
        tokio::spawn(run_dedup(
            stack.clone(),
            limiter,
            worker,
            dedup,
            Health::default(),
            shutdown.clone(),
        )),
    ];

    let started: DateTime<Utc> = Utc::now();
    let mut uploaded = Vec::with_capacity(uploads.len());
    for (user, upload, bytes) in uploads {
        let key = format!("registrations/{user}/{upload}.jpg");
        stack
            .clients
            .s3
            .put_object()
            .bucket(stack.names.bucket())
            .key(&key)
            .content_type("image/jpeg")
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| BenchError::Aws {
                what: "PutObject",
                source: Box::new(e),
            })?;
        uploaded.push((user, upload, Utc::now()));
    }

    let store = RegistrationStore::new(stack);
    let deadline = Instant::now() + Duration::from_secs(60 + 10 * args.registrations as u64);
    let mut latencies = Vec::with_capacity(uploaded.len());
    let mut last = started;
    let mut waiting = uploaded;
    while !waiting.is_empty() {
        if Instant::now() > deadline {
            shutdown.cancel();
            return Err(BenchError::Run(format!(
                "{} registrations not ACTIVE in time",
                waiting.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for (user, upload, put_at) in waiting {
            let stored = store
                .get(&user, &upload)
                .await
                .map_err(|e| BenchError::Aws {
                    what: "GetItem",
                    source: Box::new(e),
                })?;
            match stored.map(|s| s.record) {
                Some(r) if r.state == RegistrationState::Active => {
                    latencies.push((r.updated_at - put_at).to_std().unwrap_or_default());
                    last = last.max(r.updated_at);
                }
                Some(r) if r.state.is_final() => {
                    shutdown.cancel();
                    return Err(BenchError::Run(format!(
                        "registration {upload} of {user} ended {:?}, not ACTIVE",
                        r.state
                    )));
                }
                _ => still.push((user, upload, put_at)),
            }
        }
        waiting = still;
    }
    shutdown.cancel();
    for role in roles {
        let _ = role.await;
    }
    latencies.sort();
    let elapsed = (last - started).to_std().unwrap_or_default().as_secs_f64();
    Ok(PipelineRun {
        per_second: latencies.len() as f64 / elapsed.max(1e-3),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

async fn noop_queue(stack: &Stack, prefix: &Prefix) -> Result<String, BenchError> {
    stack
        .clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-bench-noop"))
        .send()
        .await
        .map_err(|e| BenchError::Aws {
            what: "CreateQueue",
            source: Box::new(e),
        })?
        .queue_url
        .ok_or_else(|| BenchError::Run("CreateQueue returned no URL".into()))
}

/// Puts `count` small messages on the queue, ten per call.
async fn fill(sqs: &aws_sdk_sqs::Client, queue_url: &str, count: usize) -> Result<(), BenchError> {
    let batches: Vec<Vec<SendMessageBatchRequestEntry>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(|chunk| {
            chunk
                .iter()
                .filter_map(|i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(format!("{{\"n\":{i}}}"))
                        .build()
                        .ok()
                })
                .collect()
        })
        .collect();
    for group in batches.chunks(8) {
        let sends = group.iter().map(|entries| {
            sqs.send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries.clone()))
                .send()
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|e| BenchError::Aws {
                what: "SendMessageBatch",
                source: Box::new(e),
            })?;
        }
    }
    Ok(())
}

/// A handler that does nothing but count, and stops the worker after `target` messages.
struct Noop {
    handled: AtomicUsize,
    target: usize,
    done: CancellationToken,
}

impl Handler for Noop {
    async fn handle(&self, _message: &Message) -> Result<(), HandlerError> {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 >= self.target {
            self.done.cancel();
        }
        Ok(())
    }
}

/// Messages per second through the worker runtime, deletes included (the run ends once the
/// last handler's message is settled).
async fn noop_worker_run(stack: &Stack, queue_url: &str, count: usize) -> f64 {
    let done = CancellationToken::new();
    let noop = Noop {
        handled: AtomicUsize::new(0),
        target: count,
        done: done.clone(),
    };
    let settings = WorkerSettings {
        max_in_flight: 10,
        wait_secs: 1,
        ..WorkerSettings::default()
    };
    let started = Instant::now();
    Worker::new(
        "bench-noop",
        stack.clients.sqs.clone(),
        queue_url,
        noop,
        settings,
    )
    .run(done)
    .await;
    count as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second through the simplest correct consumer: receive ten, delete them in one
/// batch, repeat.
async fn plain_loop_run(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    count: usize,
) -> Result<f64, BenchError> {
    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
    let started = Instant::now();
    let mut deleted = 0;
    while deleted < count {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| BenchError::Aws {
                what: "ReceiveMessage",
                source: Box::new(e),
            })?;
        let entries: Vec<_> = received
            .messages()
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let n = entries.len();
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| BenchError::Aws {
                what: "DeleteMessageBatch",
                source: Box::new(e),
            })?;
        deleted += n;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_duration(vec![ms(5), ms(1), ms(9)]), ms(5));
    }
}
