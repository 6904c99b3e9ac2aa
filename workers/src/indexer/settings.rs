//! The indexer's own settings: the upload limits and the quality gate's bars. Every one is also
//! an environment variable named `FACEGATE_INDEXER_*`.

/// Rekognition's limit for an image sent as bytes, and so the largest photo the indexer takes.
pub const REKOGNITION_MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct IndexerSettings {
    /// Largest registration photo, in bytes (at most 5 MiB: the photo is sent to Rekognition
    /// as bytes, so what was checked is exactly what is indexed).
    #[arg(id = "indexer-max-bytes", long = "indexer-max-bytes", env = "FACEGATE_INDEXER_MAX_BYTES", default_value_t = REKOGNITION_MAX_IMAGE_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=REKOGNITION_MAX_IMAGE_BYTES))]
    pub max_bytes: u64,
    /// Smallest face side, in pixels of the photo as displayed (AWS advises at least 50).
    #[arg(
        id = "indexer-min-face-pixels",
        long = "indexer-min-face-pixels",
        env = "FACEGATE_INDEXER_MIN_FACE_PIXELS",
        default_value_t = 50.0
    )]
    pub min_face_pixels: f32,
    /// A detection below this confidence (0-100) is not counted as a face.
    #[arg(
        id = "indexer-min-confidence",
        long = "indexer-min-confidence",
        env = "FACEGATE_INDEXER_MIN_CONFIDENCE",
        default_value_t = 90.0
    )]
    pub min_confidence: f32,
    /// Largest head turn (yaw) or tilt (pitch), in degrees either way.
    #[arg(
        id = "indexer-max-pose-degrees",
        long = "indexer-max-pose-degrees",
        env = "FACEGATE_INDEXER_MAX_POSE_DEGREES",
        default_value_t = 35.0
    )]
    pub max_pose_degrees: f32,
    /// Lowest sharpness (Rekognition's 0-100 `Quality.Sharpness`).
    #[arg(
        id = "indexer-min-sharpness",
        long = "indexer-min-sharpness",
        env = "FACEGATE_INDEXER_MIN_SHARPNESS",
        default_value_t = 4.0
    )]
    pub min_sharpness: f32,
    /// Lowest brightness (Rekognition's 0-100 `Quality.Brightness`).
    #[arg(
        id = "indexer-min-brightness",
        long = "indexer-min-brightness",
        env = "FACEGATE_INDEXER_MIN_BRIGHTNESS",
        default_value_t = 20.0
    )]
    pub min_brightness: f32,
    /// Highest brightness (Rekognition's 0-100 `Quality.Brightness`).
    #[arg(
        id = "indexer-max-brightness",
        long = "indexer-max-brightness",
        env = "FACEGATE_INDEXER_MAX_BRIGHTNESS",
        default_value_t = 95.0
    )]
    pub max_brightness: f32,
    /// Seconds between two sweeps of the `uploads` dead-letter queue, which mark registrations
    /// whose message was dead-lettered FAILED (see `role`).
    #[arg(id = "indexer-dead-letter-sweep-secs", long = "indexer-dead-letter-sweep-secs", env = "FACEGATE_INDEXER_DEAD_LETTER_SWEEP_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=43_200))]
    pub dead_letter_sweep_secs: u64,
}

impl Default for IndexerSettings {
    fn default() -> Self {
        Self {
            max_bytes: REKOGNITION_MAX_IMAGE_BYTES,
            min_face_pixels: 50.0,
            min_confidence: 90.0,
            max_pose_degrees: 35.0,
            min_sharpness: 4.0,
            min_brightness: 20.0,
            max_brightness: 95.0,
            dead_letter_sweep_secs: 60,
        }
    }
}
