//! `facegate bench engine`: how fast the engine answers, and how much memory it takes.
//!
//! - CompareFaces and SearchFacesByImage requests per second over HTTP, through the real
//!   `aws-sdk-rekognition` client, with `clients` concurrent callers against a server spawned
//!   in-process on loopback (bounded by a request count and a time limit).
//! - The search part of SearchFacesByImage alone at 10k, 100k and 1M faces: synthetic random
//!   unit vectors plus one real face, queried with another photo of the same person.
//! - Resident memory: idle with the models loaded, and the peak (VmHWM).
//!
//! [`bench`] returns a [`BenchReport`]; printing it (`Display`) gives the report. Other parts
//! of the engine (the pipeline's per-stage timings, the Python reference) add theirs as
//! [`ReportSection`]s in `report.sections`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::Image;
use facegate_shared::aws::AwsSettings;

use crate::collection::search::{Embeddings, random_unit_vectors};
use crate::face::{Embedding, FaceModels, ModelSettings};
use crate::server::ops::cosine_floor;
use crate::server::ops::search_faces::{DEFAULT_THRESHOLD, MAX_FACES};
use crate::{EngineArgs, EngineError};

/// `facegate bench engine`: every setting is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub models: ModelSettings,
    /// Two photos of one person: the first is searched for / compared, the second is indexed
    /// and used as the target.
    #[arg(
        long = "bench-images",
        env = "FACEGATE_BENCH_IMAGES",
        value_delimiter = ',',
        default_value = "tests/fixtures/faces/obama_1.jpg,tests/fixtures/faces/obama_2.jpg"
    )]
    pub images: Vec<PathBuf>,
    /// Concurrent HTTP clients.
    #[arg(long, env = "FACEGATE_BENCH_CLIENTS", default_value_t = 2)]
    pub clients: usize,
    /// Requests per operation at most ...
    #[arg(long, env = "FACEGATE_BENCH_REQUESTS", default_value_t = 200)]
    pub requests: usize,
    /// ... and seconds per operation at most.
    #[arg(long, env = "FACEGATE_BENCH_SECONDS", default_value_t = 15)]
    pub seconds: u64,
    /// Collection sizes for the search timing.
    #[arg(
        long,
        env = "FACEGATE_BENCH_SIZES",
        value_delimiter = ',',
        default_value = "10000,100000,1000000"
    )]
    pub sizes: Vec<usize>,
    /// Searches timed per size.
    #[arg(long, env = "FACEGATE_BENCH_SEARCHES", default_value_t = 50)]
    pub searches: usize,
    /// Iterations of the per-stage timing (and of the reference pipeline) per image size.
    #[arg(long, env = "FACEGATE_BENCH_STAGE_ITERATIONS", default_value_t = 30)]
    pub stage_iterations: usize,
    /// Python with opencv-python-headless (scripts/requirements-bench.txt) for the reference
    /// pipeline; `make bench-engine` installs it into .venv.
    #[arg(
        long,
        env = "FACEGATE_BENCH_REFERENCE_PYTHON",
        default_value = ".venv/bin/python"
    )]
    pub reference_python: PathBuf,
    /// The reference pipeline (OpenCV FaceDetectorYN + FaceRecognizerSF on the same models).
    #[arg(
        long,
        env = "FACEGATE_BENCH_REFERENCE_SCRIPT",
        default_value = "scripts/reference_pipeline.py"
    )]
    pub reference_script: PathBuf,
}

/// Everything the benchmark measured.
#[derive(Debug, Default)]
pub struct BenchReport {
    /// Resident memory with the models loaded and the server up, before any request.
    pub idle_rss_bytes: Option<u64>,
    pub http: Vec<HttpResult>,
    pub search: Vec<SearchResult>,
    /// Highest resident memory of the process during the run.
    pub peak_rss_bytes: Option<u64>,
    /// Sections added by other benchmarks (pipeline stages, Python reference, ...).
    pub sections: Vec<ReportSection>,
}

#[derive(Debug)]
pub struct HttpResult {
    pub operation: &'static str,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

#[derive(Debug)]
pub struct SearchResult {
    pub faces: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// Whether every search found the one real face first (it must: same person).
    pub found_real_face: bool,
}

/// A titled block of lines in the report.
#[derive(Debug, Clone)]
pub struct ReportSection {
    pub title: String,
    pub lines: Vec<String>,
}

/// Run the engine benchmark (loads the models itself).
pub async fn bench(args: BenchArgs) -> Result<BenchReport, EngineError> {
    let settings = args.models.clone();
    let models = tokio::task::spawn_blocking(move || FaceModels::load(&settings)).await??;
    bench_with_models(args, Arc::new(models)).await
}

/// Run the engine benchmark with models already loaded.
pub async fn bench_with_models(
    args: BenchArgs,
    models: Arc<FaceModels>,
) -> Result<BenchReport, EngineError> {
    let [source, target] = read_images(&args.images)?;
    let data_dir = std::env::temp_dir().join(format!("facegate-bench-{}", uuid::Uuid::new_v4()));
    let engine = crate::spawn_with_models(
        EngineArgs::local(data_dir.clone(), args.models.clone()),
        models.clone(),
    )
    .await?;
    let mut report = BenchReport {
        idle_rss_bytes: rss("VmRSS:"),
        ..BenchReport::default()
    };
    let result = http_benchmarks(&args, &engine.url(), &source, &target).await;
    engine.shutdown().await?;
    if let Err(error) = std::fs::remove_dir_all(&data_dir) {
        tracing::warn!(path = %data_dir.display(), %error, "could not remove the benchmark's data");
    }
    report.http = result?;

    let (models_for_stages, stage_photo) = (models.clone(), source.clone());
    let (searched, real) = tokio::task::spawn_blocking(move || {
        let embed = |bytes: &[u8]| -> Result<Embedding, EngineError> {
            let analysis = models
                .analyze(bytes)
                .map_err(|e| EngineError::Bench(e.to_string()))?;
            let face = analysis
                .faces
                .into_iter()
                .next()
                .ok_or_else(|| EngineError::Bench("no face in a benchmark photo".into()))?;
            Ok(face.embedding)
        };
        Ok::<_, EngineError>((embed(&source)?, embed(&target)?))
    })
    .await??;
    for &faces in &args.sizes {
        let (searched, real, searches) = (searched.clone(), real.clone(), args.searches);
        report.search.push(
            tokio::task::spawn_blocking(move || time_search(faces, &real, &searched, searches))
                .await?,
        );
    }
    report
        .sections
        .push(stage_section(&args, models_for_stages, &stage_photo).await?);
    report.peak_rss_bytes = rss("VmHWM:");
    Ok(report)
}

/// Per-stage latency on a 640x480 and a 1920x1080 JPEG made from the first benchmark photo,
/// beside the Python/OpenCV reference pipeline run on the same files in the same run.
async fn stage_section(
    args: &BenchArgs,
    models: Arc<FaceModels>,
    photo: &[u8],
) -> Result<ReportSection, EngineError> {
    use crate::face::bench::{
        Comparison, bench_images, bench_stages, run_reference, write_bench_images,
    };
    let failed = |e: &dyn fmt::Display| EngineError::Bench(e.to_string());
    let (photo, iterations) = (photo.to_vec(), args.stage_iterations);
    let (images, ours) = tokio::task::spawn_blocking(move || {
        let images = bench_images(&models, &photo).map_err(|e| failed(&e))?;
        let ours = bench_stages(&models, &images, iterations).map_err(|e| failed(&e))?;
        Ok::<_, EngineError>((images, ours))
    })
    .await??;
    let dir = std::env::temp_dir().join(format!("facegate-bench-images-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| failed(&e))?;
    let paths = write_bench_images(&images, &dir).map_err(|e| failed(&e))?;
    let labelled: Vec<_> = images.iter().map(|i| i.label.clone()).zip(paths).collect();
    let (python, script) = (args.reference_python.clone(), args.reference_script.clone());
    // OpenCV on one thread (the table), then on two (the engine's detector takes a second core
    // when one is free, so the fair comparison of totals is also made with two each).
    let reference = tokio::task::spawn_blocking(move || {
        let one = run_reference(&python, &script, &labelled, iterations, 1);
        let two = run_reference(&python, &script, &labelled, iterations, 2);
        (one, two)
    })
    .await?;
    let (reference, reference_two) = reference;
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines: Vec<String> = Vec::new();
    let table = match &reference {
        Ok(theirs) => Comparison {
            engine: &ours,
            reference: Some(theirs),
        }
        .to_string(),
        Err(e) => {
            lines.push(format!("reference pipeline not run: {e}"));
            Comparison {
                engine: &ours,
                reference: None,
            }
            .to_string()
        }
    };
    lines.extend(table.lines().map(str::to_string));
    if let Ok(two) = &reference_two {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        for (engine, theirs) in ours.iter().zip(two) {
            let (a, b) = (ms(engine.stages[5].p50), ms(theirs.stages[5].p50));
            lines.push(format!(
                "{}: total p50 against the reference on 2 threads: {a:.2} / {b:.2} ms = {:.2}",
                engine.label,
                a / b
            ));
        }
    }
    Ok(ReportSection {
        title: "Pipeline stages, one image at a time (ratio = engine / Python+OpenCV reference; below 1 is faster)".into(),
        lines,
    })
}

fn read_images(paths: &[PathBuf]) -> Result<[Vec<u8>; 2], EngineError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| EngineError::Bench(format!("{}: {e}", p.display())))
    };
    match paths {
        [a, b] => Ok([read(a)?, read(b)?]),
        _ => Err(EngineError::Bench(
            "--bench-images needs exactly two photos of one person".into(),
        )),
    }
}

async fn http_benchmarks(
    args: &BenchArgs,
    url: &str,
    source: &[u8],
    target: &[u8],
) -> Result<Vec<HttpResult>, EngineError> {
    let settings = AwsSettings {
        endpoint_url_rekognition: Some(url.to_owned()),
        max_attempts: 1,
        ..AwsSettings::local()
    };
    let client = settings.rekognition(&settings.sdk_config().await);
    let failed = |e: &dyn fmt::Display| EngineError::Bench(e.to_string());
    let collection = "bench";
    client
        .create_collection()
        .collection_id(collection)
        .send()
        .await
        .map_err(|e| failed(&e))?;
    client
        .index_faces()
        .collection_id(collection)
        .image(Image::builder().bytes(Blob::new(target)).build())
        .send()
        .await
        .map_err(|e| failed(&e))?;

    // Every call sends images no call sent before (the photo plus a counter after its end,
    // which decoders ignore), so the engine's cache of recent analyses never answers: these
    // figures are for images the engine has not seen.
    let calls = Arc::new(AtomicUsize::new(0));
    let fresh = {
        let calls = calls.clone();
        move |bytes: &[u8]| {
            let mut unique = bytes.to_vec();
            unique.extend_from_slice(&calls.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            Image::builder().bytes(Blob::new(unique)).build()
        }
    };
    let (source, target) = (source.to_vec(), target.to_vec());
    let compare = {
        let (client, fresh, source) = (client.clone(), fresh.clone(), source.clone());
        move || {
            let call = client
                .compare_faces()
                .source_image(fresh(&source))
                .target_image(fresh(&target));
            async move { call.send().await.map(|_| ()).map_err(|e| e.to_string()) }
        }
    };
    let search = {
        let client = client.clone();
        move || {
            let call = client
                .search_faces_by_image()
                .collection_id(collection)
                .image(fresh(&source));
            async move { call.send().await.map(|_| ()).map_err(|e| e.to_string()) }
        }
    };
    let limits = (
        args.clients.max(1),
        args.requests,
        Duration::from_secs(args.seconds),
    );
    Ok(vec![
        load("CompareFaces", limits, compare).await,
        load("SearchFacesByImage", limits, search).await,
    ])
}

/// Call `request` from `clients` tasks until `count` calls are made or `limit` has passed.
async fn load<F, Fut>(
    operation: &'static str,
    (clients, count, limit): (usize, usize, Duration),
    request: F,
) -> HttpResult
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    // One warm-up call, not timed.
    if let Err(error) = request().await {
        tracing::warn!(operation, %error, "warm-up call failed");
    }
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (issued, request) = (issued.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while issued.fetch_add(1, Ordering::Relaxed) < count && started.elapsed() < limit {
                let t = Instant::now();
                if let Err(error) = request().await {
                    errors += 1;
                    tracing::warn!(operation, %error, "benchmark call failed");
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    HttpResult {
        operation,
        requests: latencies.len(),
        errors,
        requests_per_second: latencies.len() as f64 / elapsed.max(1e-9),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

/// Time the search alone over `faces` faces: random ones and `real` in the middle.
fn time_search(faces: usize, real: &Embedding, query: &Embedding, searches: usize) -> SearchResult {
    let faces = faces.max(1);
    let mut embeddings = Embeddings::default();
    embeddings.reserve_exact(faces);
    let real_position = faces / 2;
    for (i, e) in random_unit_vectors(faces as u64)
        .take(faces.saturating_sub(1))
        .enumerate()
    {
        if i == real_position {
            embeddings.push(real);
        }
        embeddings.push(&e);
    }
    if embeddings.len() < faces {
        embeddings.push(real);
    }
    // The server's defaults: every match above similarity 80.
    let min_cosine = cosine_floor(DEFAULT_THRESHOLD as f32);
    let mut found_real_face = true;
    let mut times = Vec::with_capacity(searches);
    for _ in 0..searches.max(1) {
        let t = Instant::now();
        let hits = embeddings.search(query, MAX_FACES as usize, min_cosine);
        times.push(t.elapsed());
        found_real_face &= hits
            .first()
            .is_some_and(|h| h.position == real_position.min(faces - 1));
    }
    times.sort();
    SearchResult {
        faces,
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        found_real_face,
    }
}

/// The `p` quantile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A `/proc/self/status` line in bytes (`VmRSS:` now, `VmHWM:` the peak); Linux only.
pub fn rss(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: Option<u64>| {
            b.map_or("n/a".to_string(), |b| {
                format!("{:.0} MiB", b as f64 / 1048576.0)
            })
        };
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
        writeln!(f, "facegate engine benchmark")?;
        writeln!(f, "\nHTTP (aws-sdk-rekognition, loopback)")?;
        for r in &self.http {
            writeln!(
                f,
                "  {:<20} {:>7.1} req/s   p50 {:>10}   p99 {:>10}   ({} requests, {} errors)",
                r.operation,
                r.requests_per_second,
                ms(r.p50),
                ms(r.p99),
                r.requests,
                r.errors
            )?;
        }
        writeln!(
            f,
            "\nSearch part of SearchFacesByImage (exact, threshold 80)"
        )?;
        for s in &self.search {
            let check = if s.found_real_face {
                "found the real face"
            } else {
                "MISSED the real face"
            };
            writeln!(
                f,
                "  {:>9} faces   p50 {:>10}   p99 {:>10}   {check}",
                s.faces,
                ms(s.p50),
                ms(s.p99)
            )?;
        }
        writeln!(f, "\nMemory")?;
        writeln!(
            f,
            "  idle RSS, models loaded   {}",
            mib(self.idle_rss_bytes)
        )?;
        writeln!(
            f,
            "  peak RSS (VmHWM)          {}",
            mib(self.peak_rss_bytes)
        )?;
        for section in &self.sections {
            writeln!(f, "\n{}", section.title)?;
            for line in &section.lines {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn rss_is_read_from_proc() {
        if cfg!(target_os = "linux") {
            assert!(rss("VmRSS:").unwrap() > 0);
            assert!(rss("VmHWM:").unwrap() >= rss("VmRSS:").unwrap() / 2);
        }
    }
}
