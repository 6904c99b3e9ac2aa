//! The face pipeline: decode an image, find every face, measure it and embed it.
//!
//! This is the contract between the pipeline (this module and its children) and the
//! Rekognition-compatible server: the server only ever calls [`FaceModels::load`],
//! [`FaceModels::analyze`] and [`similarity`]. Everything is CPU-bound and blocking: callers on
//! an async runtime use `spawn_blocking`.
//!
//! One image goes through these steps, each in its own module:
//! 1. [`decode`]: JPEG/PNG bytes to an upright RGB image (EXIF orientation applied, size limits);
//! 2. [`detect`]: YuNet finds every face, with five landmarks, on the photo and its mirror
//!    (the two runs averaged by [`measure::symmetrize`]);
//! 3. [`align`]: each face is warped onto the 112x112 ArcFace template;
//! 4. [`embed`]: SFace turns the crop into a unit 128-d vector;
//! 5. [`measure`]: pose fitted to the landmarks, confidence on Rekognition's scale, brightness
//!    and sharpness from the crop.
//!
//! [`calibration`] maps cosines onto Rekognition's similarity scale and measures that mapping;
//! [`bench`] times the stages against the OpenCV reference; [`runtime`] loads ONNX Runtime.

pub mod align;
pub mod bench;
pub mod calibration;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod measure;
pub mod model_edit;
mod runtime;
pub mod variants;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use calibration::{
    CalibrationReport, calibrate, cosine_for_similarity, similarity_from_cosine,
};
pub use embed::cosine;
pub use runtime::find_onnxruntime;

/// Where the models and the ONNX Runtime library are, and how much CPU to give them.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelSettings {
    /// Folder holding face_detection_yunet_2023mar.onnx and face_recognition_sface_2021dec.onnx
    /// (`scripts/setup.sh` fetches them).
    #[arg(long, env = "FACEGATE_MODELS_DIR", default_value = ".facegate/models")]
    pub models_dir: PathBuf,
    /// The ONNX Runtime shared library (libonnxruntime.so.1.31.1 from the `onnxruntime` wheel).
    /// When unset, the one in ./.venv is used.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,
    /// Images analysed at the same time (one detector and one embedder session each).
    #[arg(long, env = "FACEGATE_ENGINE_WORKERS", default_value_t = 2)]
    pub workers: usize,
}

/// A loaded detector and embedder, safe to share between threads.
pub struct FaceModels {
    /// One per worker: an analysis takes one before it decodes, so at most `workers` photos
    /// are decoded and in the models at once, whatever the number of requests waiting. (Taken
    /// after decoding, 32 waiting 1920x1080 uploads held 1.4 GB; a 4096x4096 one is 50 MB.)
    slots: runtime::Pool<()>,
    detector: runtime::Pool<detect::Detector>,
    embedder: runtime::Pool<embed::Embedder>,
}

/// Where the time of one [`FaceModels::analyze_timed`] call went. `align`, `embed` and
/// `measure` add up every face of the image. With an idle core the largest face is aligned
/// and embedded on it during `detect` (see [`EarlyEmbedding`]): `align` and `embed` count that
/// time too, so the stages can add up to more than `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    pub decode: Duration,
    /// Every detector pass (scaling, YuNet, decoding its outputs) and NMS, on the photo
    /// and (when it holds a face) on its mirror, from the first run to the last.
    pub detect: Duration,
    pub align: Duration,
    /// Time in SFace, wherever it ran.
    pub embed: Duration,
    /// Pose and quality.
    pub measure: Duration,
    /// How many times YuNet ran: every pass on the photo, and on its mirror the passes that
    /// found a face (all of them only when that left a face unpaired).
    pub detector_runs: usize,
    /// Threads the detector ran on: 2 when a second session was free (a core idle).
    pub detector_threads: usize,
    /// Faces aligned and embedded on the idle core during detection ([`EarlyEmbedding`]): 0
    /// or 1.
    pub embedded_early: usize,
    /// The whole analysis (see [`StageTimings::total`]).
    pub total: Duration,
}

impl StageTimings {
    /// The whole analysis, decoding to measures, as the caller waited for it.
    pub fn total(&self) -> Duration {
        self.total
    }
}

/// One SFace run costs about what YuNet spends on this many input pixels (8.5 ms against
/// 4.5 ms for a 640x480 input, on one thread): the weight of the early embedding when the
/// detector's runs are shared between two threads (`detect::EarlyWork`).
const EMBED_COST_PIXELS: usize = 600_000;

/// The largest face the letterbox found on the photo, aligned and embedded on the idle core
/// while the other still runs the detector: at 1920x1080 the fine pass, which finds the small
/// faces, takes as long as the letterbox, its mirror and the embedding together. It is used
/// only if that very detection is among the final faces, so the answer is the same as
/// without it.
struct EarlyEmbedding {
    detection: detect::Detection,
    crop: align::AlignedFace,
    embedding: Embedding,
    aligned: Duration,
    embedded: Duration,
}

/// Everything the engine learned from one image.
#[derive(Clone, Debug)]
pub struct ImageAnalysis {
    /// Size of the image after EXIF orientation was applied.
    pub width: u32,
    pub height: u32,
    /// Every face found, largest first.
    pub faces: Vec<Face>,
}

/// One detected face, with the measures Rekognition reports. Geometry is in ratios of the
/// image's width and height (Rekognition's convention), angles in degrees, scores 0-100.
#[derive(Clone, Debug)]
pub struct Face {
    pub bounding_box: BoundingBox,
    /// Detector confidence on Rekognition's 0-100 scale (`measure::confidence`).
    pub confidence: f32,
    /// eyeLeft, eyeRight, nose, mouthLeft, mouthRight (Rekognition's names and order).
    pub landmarks: [Landmark; 5],
    pub pose: Pose,
    pub quality: Quality,
    /// L2-normalised 128-d SFace embedding.
    pub embedding: Embedding,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Landmark {
    pub x: f32,
    pub y: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    pub roll: f32,
    pub yaw: f32,
    pub pitch: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    pub brightness: f32,
    pub sharpness: f32,
}

/// Length of an embedding.
pub const EMBEDDING_DIM: usize = 128;

/// A face embedding, unit length.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding(pub [f32; EMBEDDING_DIM]);

/// Why an image could not be analysed. Mapped by the server onto Rekognition's errors.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not a JPEG or PNG, or a corrupt/truncated one (`InvalidImageFormatException`).
    #[error("unsupported or corrupt image: {0}")]
    InvalidFormat(String),
    /// Larger than Rekognition accepts (`ImageTooLargeException`).
    #[error("image too large: {0}")]
    TooLarge(String),
    /// The models failed at run time (an internal error, never the caller's fault).
    #[error("face model failed: {0}")]
    Model(String),
}

/// Why the models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

/// Similarity of two faces on Rekognition's 0-100 scale, calibrated on real photos so that a
/// threshold means a measured false-match rate (see engine/CALIBRATION.md).
pub fn similarity(a: &Embedding, b: &Embedding) -> f32 {
    similarity_from_cosine(cosine(a, b))
}

impl FaceModels {
    /// Load and check the models (sha256), and warm them up.
    ///
    /// ONNX Runtime is loaded once per process: the library path of the first call wins.
    pub fn load(settings: &ModelSettings) -> Result<Self, ModelError> {
        let environment = runtime::environment(settings.ort_dylib_path.as_deref())?;
        let detector_bytes = runtime::read_checked(&settings.models_dir, &runtime::DETECTOR_FILE)?;
        let embedder_bytes = runtime::read_checked(&settings.models_dir, &runtime::EMBEDDER_FILE)?;
        // Checked first, edited second: see `model_edit` for why each edit is needed.
        let edit_failed = |file: &runtime::ModelFile, e: model_edit::EditError| ModelError::File {
            path: settings.models_dir.join(file.name),
            reason: e.to_string(),
        };
        let detector_bytes = model_edit::symbolic_dims(
            &detector_bytes,
            &[
                model_edit::Rename {
                    value: Some("input"),
                    output: false,
                    dims: &[(2, "height"), (3, "width")],
                },
                model_edit::Rename {
                    value: None,
                    output: true,
                    dims: &[(1, "cells")],
                },
            ],
        )
        .map_err(|e| edit_failed(&runtime::DETECTOR_FILE, e))?;
        // The same arithmetic with the weights as constants: ~20% faster, outputs equal to
        // within 2e-6 (the reference agreement test holds it to the OpenCV embeddings).
        let embedder_bytes = model_edit::strip_initializer_inputs(&embedder_bytes)
            .map_err(|e| edit_failed(&runtime::EMBEDDER_FILE, e))?;
        // PRelu as the elementwise ops it equals: 1.7x faster, bit-identical outputs.
        let (embedder_bytes, _) = model_edit::prelu_as_elementwise(&embedder_bytes)
            .map_err(|e| edit_failed(&runtime::EMBEDDER_FILE, e))?;
        let workers = settings.workers.max(1);
        let detectors = runtime::sessions(
            environment,
            &runtime::DETECTOR_FILE,
            &detector_bytes,
            workers,
        )?;
        let embedders = runtime::sessions(
            environment,
            &runtime::EMBEDDER_FILE,
            &embedder_bytes,
            workers,
        )?;
        let models = FaceModels {
            slots: runtime::Pool::of(vec![(); workers]),
            detector: runtime::Pool::of(detectors.into_iter().map(detect::Detector::new).collect()),
            embedder: runtime::Pool::of(embedders.into_iter().map(embed::Embedder::new).collect()),
        };
        models.warm_up()?;
        Ok(models)
    }

    /// Run every session once, so the first request does not pay for ONNX Runtime's lazy
    /// allocations, and so a model that cannot run fails at start-up rather than per request.
    fn warm_up(&self) -> Result<(), ModelError> {
        let blank = image::RgbImage::new(64, 64);
        let crop = align::AlignedFace {
            pixels: vec![128; align::ALIGNED_SIDE * align::ALIGNED_SIDE * 3],
        };
        // Hold every session at once so each of them is warmed, not the same one n times.
        let mut detectors: Vec<_> = (0..self.detector.len())
            .map(|_| self.detector.acquire())
            .collect();
        for session in &mut detectors {
            detect::detect(session, &blank)
                .map_err(|e| ModelError::Runtime(format!("warm-up: {e}")))?;
        }
        let mut embedders: Vec<_> = (0..self.embedder.len())
            .map(|_| self.embedder.acquire())
            .collect();
        for session in &mut embedders {
            embed::embed(session, &crop)
                .map_err(|e| ModelError::Runtime(format!("warm-up: {e}")))?;
        }
        Ok(())
    }

    /// Decode (JPEG/PNG, EXIF orientation honoured), detect, align, measure and embed every
    /// face. No face is not an error: `faces` is empty.
    pub fn analyze(&self, image: &[u8]) -> Result<ImageAnalysis, ImageError> {
        self.analyze_timed(image).map(|(analysis, _)| analysis)
    }

    /// [`FaceModels::analyze`], also saying how long each stage took.
    pub fn analyze_timed(&self, image: &[u8]) -> Result<(ImageAnalysis, StageTimings), ImageError> {
        let _slot = self.slots.acquire();
        let mut timings = StageTimings::default();
        let began = Instant::now();
        let started = began;
        let photo = decode::decode(image)?;
        timings.decode = started.elapsed();

        let started = Instant::now();
        // The letterbox's largest face on the photo, embedded while the other thread still
        // runs the detector (see `EarlyEmbedding`); only with an idle core.
        let early = Mutex::new(None);
        let embed_early = |faces: &[detect::Detection]| {
            let Some(largest) = faces.iter().max_by(|a, b| a.area().total_cmp(&b.area())) else {
                return;
            };
            let Some(mut session) = self.embedder.try_acquire() else {
                return;
            };
            let started = Instant::now();
            let crop = align::align(&photo, &largest.landmarks);
            let aligned = started.elapsed();
            // A failure here is met again, and reported, when the face is embedded as usual.
            if let Ok(embedding) = embed::embed(&mut session, &crop) {
                *early.lock().unwrap_or_else(|e| e.into_inner()) = Some(EarlyEmbedding {
                    detection: *largest,
                    crop,
                    embedding,
                    aligned,
                    embedded: started.elapsed() - aligned,
                });
            }
        };
        // Every face, seen on the photo and on its mirror, the two averaged: see
        // `detect::detect_symmetric` (and `measure::symmetrize` for why).
        let seen = {
            let mut session = self.detector.acquire();
            // A second session free right now means a core is idle: it takes a share of the
            // detector runs. Under load none is free and the analysis keeps to one thread, so
            // this never costs throughput (and the answer is the same either way).
            let mut helper = self.detector.try_acquire();
            timings.detector_threads = 1 + usize::from(helper.is_some());
            let work = detect::EarlyWork {
                run: &embed_early,
                cost: EMBED_COST_PIXELS,
            };
            let early_work = helper.is_some().then_some(&work);
            detect::detect_symmetric(&mut session, helper.as_deref_mut(), &photo, early_work)
                .map_err(|e| ImageError::Model(e.to_string()))?
        };
        timings.detector_runs = seen.runs;
        let (detections, first_run) = (seen.faces, seen.photo);
        timings.detect = started.elapsed();
        let early = early.into_inner().unwrap_or_else(|e| e.into_inner());

        let (width, height) = photo.dimensions();
        // Each crop is aligned on this run's own landmarks, as OpenCV's FaceRecognizerSF
        // does: the embeddings (and so the similarity calibration) stay those of the
        // reference pipeline; averaged landmarks moved them by up to 0.045 in cosine. The
        // face embedded early is that very detection's crop and embedding.
        let mut early = early;
        if let Some(done) = &early {
            timings.align += done.aligned;
            timings.embed += done.embedded;
        }
        let embedded: Vec<(align::AlignedFace, Option<Embedding>)> = detections
            .iter()
            .map(|detection| {
                let own = first_run
                    .iter()
                    .max_by(|a, b| a.iou(detection).total_cmp(&b.iou(detection)))
                    .unwrap_or(detection);
                match early.take_if(|done| done.detection == *own) {
                    Some(done) => {
                        timings.embedded_early += 1;
                        (done.crop, Some(done.embedding))
                    }
                    None => {
                        let started = Instant::now();
                        let crop = align::align(&photo, &own.landmarks);
                        timings.align += started.elapsed();
                        (crop, None)
                    }
                }
            })
            .collect();

        // Every other face of the image with one session held: one run per face, batch size
        // 1, the shape SFace declares (and the one its reference embeddings were measured
        // with).
        let started = Instant::now();
        let mut session = None;
        let embeddings = embedded
            .iter()
            .map(|(crop, done)| match done {
                Some(embedding) => Ok(embedding.clone()),
                None => embed::embed(session.get_or_insert_with(|| self.embedder.acquire()), crop),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ImageError::Model(e.to_string()))?;
        drop(session);
        timings.embed += started.elapsed();
        let crops: Vec<_> = embedded.into_iter().map(|(crop, _)| crop).collect();

        let started = Instant::now();
        let mut faces = Vec::with_capacity(detections.len());
        for ((detection, crop), embedding) in detections.iter().zip(&crops).zip(embeddings) {
            faces.push(Face::measured(detection, crop, embedding, width, height));
        }
        timings.measure = started.elapsed();
        // Largest first (Rekognition's searches use the largest face).
        faces.sort_by(|a, b| b.bounding_box.area().total_cmp(&a.bounding_box.area()));
        timings.total = began.elapsed();
        Ok((
            ImageAnalysis {
                width,
                height,
                faces,
            },
            timings,
        ))
    }
}

impl Face {
    /// Express a detection in ratios of the image and add its measures.
    fn measured(
        detection: &detect::Detection,
        crop: &align::AlignedFace,
        embedding: Embedding,
        width: u32,
        height: u32,
    ) -> Face {
        let (w, h) = (width as f32, height as f32);
        let [left, top, box_width, box_height] = detection.bbox;
        Face {
            // Not clamped: like Rekognition's, a box may reach past the image's edge.
            bounding_box: BoundingBox {
                left: left / w,
                top: top / h,
                width: box_width / w,
                height: box_height / h,
            },
            confidence: measure::confidence(detection.score),
            landmarks: detection
                .landmarks
                .map(|[x, y]| Landmark { x: x / w, y: y / h }),
            pose: measure::pose(&detection.landmarks, width, height),
            quality: measure::quality(crop),
            embedding,
        }
    }
}

impl BoundingBox {
    /// Width times height, in squared image ratios.
    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }
}
