//! The face pipeline: decode an image, find every face, measure it and embed it.
//!
//! This is the contract between the pipeline (this module and its children) and the
//! Rekognition-compatible server: the server only ever calls [`FaceModels::load`],
//! [`FaceModels::analyze`] and [`similarity`]. Everything is CPU-bound and blocking: callers on
//! an async runtime use `spawn_blocking`.

use std::path::PathBuf;

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
pub struct FaceModels {/* sessions */}

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
    /// Detector confidence, 0-100.
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
    let _ = (a, b);
    unimplemented!("the face pipeline lands this")
}

impl FaceModels {
    /// Load and check the models (sha256), and warm them up.
    pub fn load(settings: &ModelSettings) -> Result<Self, ModelError> {
        let _ = settings;
        unimplemented!("the face pipeline lands this")
    }

    /// Decode (JPEG/PNG, EXIF orientation honoured), detect, align, measure and embed every
    /// face. No face is not an error: `faces` is empty.
    pub fn analyze(&self, image: &[u8]) -> Result<ImageAnalysis, ImageError> {
        let _ = image;
        unimplemented!("the face pipeline lands this")
    }
}
