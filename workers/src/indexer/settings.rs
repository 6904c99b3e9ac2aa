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
    /// A detection below this confidence (0-100) is not counted as a face. 85: midway (in the
    /// detector's score) between the highest non-face candidate measured (confidence 11) and the
    /// lowest genuine face on any usable variant (99.7); engine/CALIBRATION.md, "Confidence".
    #[arg(
        id = "indexer-min-confidence",
        long = "indexer-min-confidence",
        env = "FACEGATE_INDEXER_MIN_CONFIDENCE",
        default_value_t = 85.0
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
            min_confidence: 85.0,
            max_pose_degrees: 35.0,
            min_sharpness: 4.0,
            min_brightness: 20.0,
            max_brightness: 95.0,
            dead_letter_sweep_secs: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    /// `default` of every `FACEGATE_INDEXER_*` setting as `--help` shows it.
    fn defaults_in_help() -> Vec<(String, String)> {
        let command = IndexerSettings::augment_args(Command::new("indexer"));
        command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let default = arg
                    .get_default_values()
                    .first()?
                    .to_string_lossy()
                    .into_owned();
                Some((env, default))
            })
            .collect()
    }

    /// A number of the document: `90`, `4.5`, or `5 MB` (MiB, as the limit is).
    fn number(text: &str) -> Option<f64> {
        let text = text.trim();
        match text.strip_suffix(" MB") {
            Some(mebibytes) => mebibytes.trim().parse::<f64>().ok().map(|m| m * 1048576.0),
            None => text.parse().ok(),
        }
    }

    #[test]
    fn the_defaults_match_the_struct() {
        let settings = IndexerSettings::default();
        let help = defaults_in_help();
        let value = |env: &str| {
            help.iter()
                .find(|(e, _)| e == env)
                .and_then(|(_, d)| number(d))
                .unwrap_or_else(|| panic!("{env} has no numeric default in --help"))
        };
        assert_eq!(
            value("FACEGATE_INDEXER_MIN_FACE_PIXELS"),
            f64::from(settings.min_face_pixels)
        );
        assert_eq!(
            value("FACEGATE_INDEXER_MIN_CONFIDENCE"),
            f64::from(settings.min_confidence)
        );
        assert_eq!(
            value("FACEGATE_INDEXER_MAX_POSE_DEGREES"),
            f64::from(settings.max_pose_degrees)
        );
        assert_eq!(
            value("FACEGATE_INDEXER_MAX_BYTES"),
            settings.max_bytes as f64
        );
    }

    /// deploy/README.md lists the indexer's settings as `` `_NAME` (default) `` in one table row:
    /// every one must be there, with the default `--help` shows (the document once said 80 for
    /// the minimum face size while the binary used 50).
    #[test]
    fn deploy_readme_gives_the_defaults_of_help() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/README.md"),
        )
        .expect("deploy/README.md");
        let row = readme
            .lines()
            .find(|l| l.starts_with("| indexer |") && l.contains("FACEGATE_INDEXER_"))
            .expect("the indexer's row in deploy/README.md");
        let help = defaults_in_help();
        assert!(help.len() >= 8, "{help:?}");
        for (env, default) in &help {
            let suffix = env.trim_start_matches("FACEGATE_INDEXER");
            let at = row
                .find(&format!("{suffix}` ("))
                .unwrap_or_else(|| panic!("deploy/README.md does not give {env}'s default"));
            let rest = &row[at + suffix.len() + 3..];
            let documented = &rest[..rest.find(')').expect("closing parenthesis")];
            assert_eq!(
                number(documented),
                number(default),
                "deploy/README.md gives {env} the default {documented:?}, --help says {default:?}"
            );
        }
    }
}
