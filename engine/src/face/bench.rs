//! Benchmark support: per-stage latency of the pipeline on a 640x480 and a 1920x1080 JPEG, and
//! the same photos through the OpenCV reference (`scripts/reference_pipeline.py`), so the
//! benchmark command can print both and their ratio.
//!
//! Both sides decode, detect, align and embed every face of each photo. The reference detects
//! in one 640x640 letterbox at OpenCV's default threshold (the engine's old method, kept as the
//! fixed yardstick); the engine runs its two passes at sizes chosen from the photo. The Rust side also measures pose and quality, reported
//! separately and counted in its total. Latencies are nearest-rank percentiles.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, imageops::FilterType};

use super::{FaceModels, ImageError, StageTimings};

/// The sizes the benchmark runs on (label, width, height).
pub const BENCH_SIZES: [(&str, u32, u32); 2] = [("640x480", 640, 480), ("1920x1080", 1920, 1080)];

/// Stage names, in pipeline order, as printed and as the reference script reports them.
/// `total` is wall time; `cpu` is the CPU time the process used for the whole analysis (every
/// thread: the engine's detector may take a second core when one is free), which other
/// processes on a busy machine do not inflate the way they do wall time.
pub const STAGES: [&str; 7] = [
    "decode", "detect", "align", "embed", "measure", "total", "cpu",
];

/// A JPEG made for the benchmark.
#[derive(Clone, Debug)]
pub struct BenchImage {
    pub label: String,
    pub width: u32,
    pub height: u32,
    pub jpeg: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the benchmark photo: {0}")]
    Photo(#[from] ImageError),
    #[error("the benchmark photo shows no face")]
    NoFace,
    #[error("encoding the benchmark JPEG: {0}")]
    Encode(#[from] image::ImageError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running the reference pipeline ({command}): {reason}")]
    Reference { command: String, reason: String },
}

/// Make the benchmark JPEGs (quality 90) from `photo`: for each size, the largest window of
/// that aspect ratio centred as near as possible on the photo's largest face, resized to size.
pub fn bench_images(models: &FaceModels, photo: &[u8]) -> Result<Vec<BenchImage>, BenchError> {
    let analysis = models.analyze(photo)?;
    let face = analysis.faces.first().ok_or(BenchError::NoFace)?;
    let source = DynamicImage::ImageRgb8(super::decode::decode(photo)?);
    let (width, height) = (f64::from(analysis.width), f64::from(analysis.height));
    let centre_x = f64::from(face.bounding_box.left + face.bounding_box.width / 2.0) * width;
    let centre_y = f64::from(face.bounding_box.top + face.bounding_box.height / 2.0) * height;

    BENCH_SIZES
        .iter()
        .map(|&(label, out_w, out_h)| {
            let aspect = f64::from(out_w) / f64::from(out_h);
            let (crop_w, crop_h) = if width / height > aspect {
                (height * aspect, height)
            } else {
                (width, width / aspect)
            };
            let left = (centre_x - crop_w / 2.0).clamp(0.0, width - crop_w);
            let top = (centre_y - crop_h / 2.0).clamp(0.0, height - crop_h);
            let window = source.crop_imm(left as u32, top as u32, crop_w as u32, crop_h as u32);
            let resized = window.resize_exact(out_w, out_h, FilterType::Triangle);
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .encode_image(&resized)?;
            Ok(BenchImage {
                label: label.to_string(),
                width: out_w,
                height: out_h,
                jpeg,
            })
        })
        .collect()
}

/// p50 and p99 of one stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
}

/// Nearest-rank percentile `q` (0-100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((q / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    Percentiles {
        p50: percentile(samples, 50.0),
        p99: percentile(samples, 99.0),
    }
}

/// Latencies of one image, per stage in [`STAGES`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageLatency {
    pub label: String,
    pub faces: usize,
    pub iterations: usize,
    pub stages: [Percentiles; 7],
    /// The engine only: the most threads its detector ran on (2 when a second session was
    /// free, as it is when one image is analysed at a time).
    pub detector_threads: usize,
    /// The reference only: SFace alone through onnxruntime's Python API (one thread), the
    /// speed the engine's `embed` stage is held to.
    pub onnxruntime_embed: Option<Percentiles>,
}

impl ImageLatency {
    pub fn stage(&self, name: &str) -> Option<Percentiles> {
        STAGES
            .iter()
            .position(|s| *s == name)
            .map(|i| self.stages[i])
    }
}

/// Run `iterations` analyses of each image (after 3 warm-up runs) and collect per-stage
/// p50/p99.
pub fn bench_stages(
    models: &FaceModels,
    images: &[BenchImage],
    iterations: usize,
) -> Result<Vec<ImageLatency>, ImageError> {
    let mut results = Vec::new();
    for image in images {
        for _ in 0..3 {
            models.analyze(&image.jpeg)?;
        }
        let mut samples: [Vec<Duration>; 7] = Default::default();
        let (mut faces, mut detector_threads) = (0, 0);
        for _ in 0..iterations.max(1) {
            let cpu_before = process_cpu_time();
            let (analysis, t) = models.analyze_timed(&image.jpeg)?;
            let cpu = process_cpu_time().saturating_sub(cpu_before);
            faces = analysis.faces.len();
            detector_threads = detector_threads.max(t.detector_threads);
            let StageTimings {
                decode,
                detect,
                align,
                embed,
                measure,
                ..
            } = t;
            for (i, value) in [decode, detect, align, embed, measure, t.total(), cpu]
                .into_iter()
                .enumerate()
            {
                samples[i].push(value);
            }
        }
        results.push(ImageLatency {
            label: image.label.clone(),
            faces,
            iterations: iterations.max(1),
            stages: samples.each_mut().map(|s| percentiles(s)),
            detector_threads,
            onnxruntime_embed: None,
        });
    }
    Ok(results)
}

/// CPU time used so far by this process, every thread.
fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which lives on this stack.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Write the benchmark images to `dir` as `<label>.jpg`, for the reference script.
pub fn write_bench_images(images: &[BenchImage], dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    images
        .iter()
        .map(|image| {
            let path = dir.join(format!("{}.jpg", image.label));
            std::fs::write(&path, &image.jpeg).map_err(|source| BenchError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// Run `python script bench --iterations N --threads T images...`
/// (scripts/reference_pipeline.py: OpenCV on `threads` threads) and read its per-stage
/// percentiles, one [`ImageLatency`] per image in the order given. The reference has no
/// `measure` stage (zero).
pub fn run_reference(
    python: &Path,
    script: &Path,
    images: &[(String, PathBuf)],
    iterations: usize,
    threads: usize,
) -> Result<Vec<ImageLatency>, BenchError> {
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("bench")
        .arg("--iterations")
        .arg(iterations.max(1).to_string())
        .arg("--threads")
        .arg(threads.max(1).to_string())
        .args(images.iter().map(|(_, path)| path));
    let described = format!("{command:?}");
    let fail = |reason: String| BenchError::Reference {
        command: described.clone(),
        reason,
    };
    let output = command.output().map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| fail(format!("its JSON: {e}")))?;
    images
        .iter()
        .map(|(label, path)| {
            let entry = &report["images"][path.to_string_lossy().as_ref()];
            let ms = |stage: &str, q: &str| {
                entry["ms"][stage][q]
                    .as_f64()
                    .map(|v| Duration::from_secs_f64(v / 1000.0))
            };
            let stage = |name: &str| Percentiles {
                p50: ms(name, "p50").unwrap_or_default(),
                p99: ms(name, "p99").unwrap_or_default(),
            };
            if ms("total", "p50").is_none() {
                return Err(fail(format!("no result for {}", path.display())));
            }
            Ok(ImageLatency {
                label: label.clone(),
                faces: entry["faces"].as_u64().unwrap_or(0) as usize,
                iterations,
                stages: STAGES.map(stage),
                detector_threads: threads,
                onnxruntime_embed: ms("embed_onnxruntime", "p50")
                    .map(|_| stage("embed_onnxruntime")),
            })
        })
        .collect()
}

/// The engine's latencies beside the reference's, with the ratio engine / reference.
pub struct Comparison<'a> {
    pub engine: &'a [ImageLatency],
    pub reference: Option<&'a [ImageLatency]>,
}

impl fmt::Display for Comparison<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for (i, engine) in self.engine.iter().enumerate() {
            let reference = self.reference.and_then(|r| r.get(i));
            writeln!(
                f,
                "{} ({} face(s), {} iterations, engine's detector on {} thread(s), reference on 1), ms:",
                engine.label, engine.faces, engine.iterations, engine.detector_threads
            )?;
            writeln!(
                f,
                "  {:<8} {:>9} {:>9}   {:>9} {:>9}   {:>7}",
                "stage", "rust p50", "rust p99", "ref p50", "ref p99", "p50 ratio"
            )?;
            for (s, name) in STAGES.iter().enumerate() {
                let ours = engine.stages[s];
                write!(
                    f,
                    "  {:<8} {:>9.2} {:>9.2}",
                    name,
                    ms(ours.p50),
                    ms(ours.p99)
                )?;
                match reference {
                    Some(r) if *name != "measure" => {
                        let theirs = r.stages[s];
                        let ratio = if theirs.p50.is_zero() {
                            f64::NAN
                        } else {
                            ms(ours.p50) / ms(theirs.p50)
                        };
                        writeln!(
                            f,
                            "   {:>9.2} {:>9.2}   {:>7.2}",
                            ms(theirs.p50),
                            ms(theirs.p99),
                            ratio
                        )?;
                    }
                    _ => writeln!(f)?,
                }
            }
            if let Some(ort) = reference.and_then(|r| r.onnxruntime_embed) {
                let ours = engine.stages[3].p50;
                writeln!(
                    f,
                    "  embed vs onnxruntime's Python API (same model, 1 thread): {:.2} / {:.2} ms p50 = {:.2}",
                    ms(ours),
                    ms(ort.p50),
                    ms(ours) / ms(ort.p50)
                )?;
            }
        }
        Ok(())
    }
}

/// Decode just the size of a JPEG (used by tests and the benchmark printout).
pub fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::with_format(Cursor::new(jpeg), ImageFormat::Jpeg)
        .into_dimensions()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(percentile(&mut samples, 50.0), Duration::from_millis(3));
        assert_eq!(percentile(&mut samples, 99.0), Duration::from_millis(5));
        let mut hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut hundred, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut [], 50.0), Duration::ZERO);
    }

    #[test]
    fn comparison_prints_the_ratio() {
        let latency = |p50: u64| ImageLatency {
            label: "640x480".into(),
            faces: 1,
            iterations: 10,
            stages: [Percentiles {
                p50: Duration::from_millis(p50),
                p99: Duration::from_millis(p50 * 2),
            }; 7],
            detector_threads: 1,
            onnxruntime_embed: None,
        };
        let engine = [latency(10)];
        let reference = [latency(20)];
        let text = Comparison {
            engine: &engine,
            reference: Some(&reference),
        }
        .to_string();
        assert!(text.contains("0.50"), "{text}");
    }
}
