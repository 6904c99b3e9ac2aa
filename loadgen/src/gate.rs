//! `facegate bench gate`: the quality gates' refusals, measured. Every labelled photo and its
//! simple variants (re-encoded at JPEG quality 70-95, mirrored, scaled 0.5-1.5, cropped to the
//! face with a margin) go through the real engine's `DetectFaces` (in-process, over HTTP, through
//! `aws-sdk-rekognition`, exactly as the indexer and the verifier call it), and then through the
//! indexer's gate (with the configured `FACEGATE_INDEXER_*` bars) and the verifier's. Every
//! labelled photo is a genuine, usable face, so every refusal of it or of a usable variant is a
//! false refusal; the table names each one with its reason. Darkened and blurred variants, and
//! scaled ones whose face falls below the configured minimum size, are shown too but not
//! counted: a gate may rightly refuse them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{Attribute, FaceDetail, Image};
use facegate_engine::face::variants::{self, Change};
use facegate_engine::face::{FaceModels, ModelSettings};
use facegate_shared::aws::AwsSettings;
use facegate_shared::quality::QualityIssue;
use facegate_workers::IndexerSettings;
use facegate_workers::indexer::{gate, photo};

/// A photo is "clear frontal" when its original reads within this many degrees of frontal in
/// yaw and pitch: those must never be refused, on any variant.
pub const FRONTAL_DEGREES: f32 = 15.0;

#[derive(clap::Args, Clone, Debug)]
pub struct GateBenchArgs {
    /// Folder of labelled photos named <person>_<n>.<jpg|png>, each a usable genuine face.
    #[arg(long = "gate-faces", default_value = "tests/fixtures/faces")]
    pub faces: PathBuf,
    #[command(flatten)]
    pub models: ModelSettings,
    #[command(flatten)]
    pub indexer: IndexerSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum GateBenchError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no photos in {0}")]
    Empty(PathBuf),
    #[error("loading the models: {0}")]
    Models(#[from] facegate_engine::face::ModelError),
    #[error("starting the engine: {0}")]
    Engine(String),
    #[error("{photo}: {detail}")]
    Photo { photo: String, detail: String },
    #[error("DetectFaces on {photo} {variant}: {detail}")]
    Detect {
        photo: String,
        variant: String,
        detail: String,
    },
}

/// One upload and what the gates made of it.
#[derive(Clone, Debug)]
pub struct Row {
    pub photo: String,
    /// `original` or the variant's label.
    pub variant: String,
    /// Whether the variant keeps the face usable (a refusal of it is a false refusal).
    pub usable: bool,
    /// Faces DetectFaces reported, and the largest one's confidence and pose.
    pub faces: usize,
    pub confidence: Option<f32>,
    pub yaw_pitch_roll: Option<[f32; 3]>,
    /// The indexer gate's issues (empty: accepted).
    pub indexer: Vec<QualityIssue>,
    /// The verifier gate's refusal, if any.
    pub verifier: Option<QualityIssue>,
}

impl Row {
    pub fn refused(&self) -> bool {
        !self.indexer.is_empty() || self.verifier.is_some()
    }

    fn reasons(&self) -> String {
        let mut out: Vec<String> = self
            .indexer
            .iter()
            .map(|i| format!("indexer:{}", code(*i)))
            .collect();
        if let Some(v) = self.verifier {
            out.push(format!("verifier:{}", code(v)));
        }
        if out.is_empty() {
            "accepted".into()
        } else {
            out.join(" ")
        }
    }
}

/// The issue's wire code (`no-face`, `extreme-pose`, ...), as users and the audit see it.
fn code(issue: QualityIssue) -> String {
    serde_json::to_value(issue)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{issue:?}"))
}

/// Every row, and which photos count as clear frontal.
#[derive(Clone, Debug, Default)]
pub struct GateReport {
    pub rows: Vec<Row>,
    pub frontal: Vec<String>,
    pub settings: String,
}

impl GateReport {
    /// Usable uploads (originals and usable variants) refused, per photo.
    pub fn refused_per_photo(&self) -> BTreeMap<&str, Vec<&Row>> {
        let mut per: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for row in &self.rows {
            let entry = per.entry(&row.photo).or_default();
            if row.usable && row.refused() {
                entry.push(row);
            }
        }
        per
    }

    /// (refused, total) over usable uploads.
    pub fn false_refusals(&self) -> (usize, usize) {
        let usable: Vec<&Row> = self.rows.iter().filter(|r| r.usable).collect();
        (usable.iter().filter(|r| r.refused()).count(), usable.len())
    }
}

impl fmt::Display for GateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Quality gate refusals ({})", self.settings)?;
        writeln!(
            f,
            "{:<26} {:<9} {:>5} {:>6} {:>6} {:>6} {:>6}  verdict",
            "photo", "variant", "faces", "conf", "yaw", "pitch", "roll"
        )?;
        for row in &self.rows {
            let conf = row.confidence.map_or("-".into(), |c| format!("{c:.2}"));
            let [yaw, pitch, roll] = row
                .yaw_pitch_roll
                .map_or(["-".to_string(), "-".into(), "-".into()], |a| {
                    a.map(|v| format!("{v:.1}"))
                });
            writeln!(
                f,
                "{:<26} {:<9} {:>5} {:>6} {:>6} {:>6} {:>6}  {}{}",
                row.photo,
                row.variant,
                row.faces,
                conf,
                yaw,
                pitch,
                roll,
                row.reasons(),
                if row.usable {
                    ""
                } else {
                    " (not counted: degraded or below the size)"
                }
            )?;
        }
        let (refused, total) = self.false_refusals();
        writeln!(f)?;
        writeln!(
            f,
            "false refusal rate of usable genuine faces: {refused} of {total} ({:.1}%)",
            100.0 * refused as f64 / total.max(1) as f64
        )?;
        for (photo, refused) in self.refused_per_photo() {
            let frontal = if self.frontal.iter().any(|p| p == photo) {
                " [clear frontal]"
            } else {
                ""
            };
            let list: Vec<String> = refused
                .iter()
                .map(|r| format!("{} ({})", r.variant, r.reasons()))
                .collect();
            writeln!(
                f,
                "  {photo:<26}{frontal:<16} refused on {} usable variant(s){}{}",
                list.len(),
                if list.is_empty() { "" } else { ": " },
                list.join(", ")
            )?;
        }
        let degraded: Vec<&Row> = self.rows.iter().filter(|r| !r.usable).collect();
        let degraded_refused = degraded.iter().filter(|r| r.refused()).count();
        writeln!(
            f,
            "darkened/blurred variants refused: {degraded_refused} of {}",
            degraded.len()
        )
    }
}

fn labelled_photos(folder: &Path) -> Result<Vec<PathBuf>, GateBenchError> {
    let io = |source| GateBenchError::Io {
        path: folder.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("png"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(GateBenchError::Empty(folder.to_path_buf()));
    }
    Ok(paths)
}

/// Run the whole table (loads the models and spawns an engine on 127.0.0.1:0).
pub async fn run(args: GateBenchArgs) -> Result<GateReport, GateBenchError> {
    let settings = args.models.clone();
    let models = tokio::task::spawn_blocking(move || FaceModels::load(&settings))
        .await
        .map_err(|e| GateBenchError::Engine(e.to_string()))??;
    run_with_models(&args, Arc::new(models)).await
}

/// [`run`] with models already loaded (the tests share one set).
pub async fn run_with_models(
    args: &GateBenchArgs,
    models: Arc<FaceModels>,
) -> Result<GateReport, GateBenchError> {
    let photos = labelled_photos(&args.faces)?;
    let data_dir =
        std::env::temp_dir().join(format!("facegate-gate-bench-{}", uuid::Uuid::new_v4()));
    let engine_args = facegate_engine::EngineArgs::local(data_dir.clone(), args.models.clone());
    let engine = facegate_engine::spawn_with_models(engine_args, models)
        .await
        .map_err(|e| GateBenchError::Engine(e.to_string()))?;
    let aws = AwsSettings {
        endpoint_url_rekognition: Some(engine.url()),
        max_attempts: 1,
        ..AwsSettings::local()
    };
    let client = aws.rekognition(&aws.sdk_config().await);
    let result = table(&client, &args.indexer, &photos).await;
    if let Err(e) = engine.shutdown().await {
        tracing::warn!(error = %e, "stopping the in-process engine");
    }
    // The engine kept nothing worth keeping (DetectFaces only): best effort.
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut report = result?;
    report.settings = format!(
        "indexer: min confidence {}, max pose {} deg, min face {} px; verifier: min confidence {}, max pose {} deg",
        args.indexer.min_confidence,
        args.indexer.max_pose_degrees,
        args.indexer.min_face_pixels,
        facegate_verifier::face::MIN_FACE_CONFIDENCE,
        facegate_verifier::face::MAX_POSE_DEGREES
    );
    Ok(report)
}

async fn table(
    client: &aws_sdk_rekognition::Client,
    settings: &IndexerSettings,
    photos: &[PathBuf],
) -> Result<GateReport, GateBenchError> {
    let mut report = GateReport::default();
    for path in photos {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(path).map_err(|source| GateBenchError::Io {
            path: path.clone(),
            source,
        })?;
        let photo_error = |detail: String| GateBenchError::Photo {
            photo: name.clone(),
            detail,
        };
        let original = detect(client, &name, "original", &bytes).await?;
        let largest_box = original.first().and_then(|f| f.bounding_box()).map(|b| {
            facegate_engine::face::BoundingBox {
                left: b.left().unwrap_or_default(),
                top: b.top().unwrap_or_default(),
                width: b.width().unwrap_or_default(),
                height: b.height().unwrap_or_default(),
            }
        });
        let row =
            judge(settings, &name, "original", true, &bytes, &original).map_err(photo_error)?;
        if let Some([yaw, pitch, _]) = row.yaw_pitch_roll
            && yaw.abs() <= FRONTAL_DEGREES
            && pitch.abs() <= FRONTAL_DEGREES
        {
            report.frontal.push(name.clone());
        }
        report.rows.push(row);
        let decoded = variants::decode(&bytes).map_err(|e| photo_error(e.to_string()))?;
        // The original face's smaller side, in pixels: a scaled variant whose face falls below
        // the configured minimum is rightly refused `face-too-small`, so it is not counted as
        // a usable upload (the table still shows it).
        let side = largest_box.map(|b| {
            let info = photo::inspect(&bytes).ok();
            let (w, h) = info.map_or((0, 0), |i| (i.width, i.height));
            (b.width * w as f32).min(b.height * h as f32)
        });
        for change in variants::USABLE.iter().chain(&variants::DEGRADED) {
            let label = change.label();
            let big_enough = match (change, side) {
                (Change::Scale(f), Some(side)) => side * f >= settings.min_face_pixels,
                _ => true,
            };
            let variant = match (change, largest_box) {
                (Change::Crop(_), None) => continue,
                _ => variants::apply(&decoded, largest_box, *change)
                    .map_err(|e| photo_error(e.to_string()))?,
            };
            let faces = detect(client, &name, &label, &variant).await?;
            report.rows.push(
                judge(
                    settings,
                    &name,
                    &label,
                    change.keeps_the_face_usable() && big_enough,
                    &variant,
                    &faces,
                )
                .map_err(photo_error)?,
            );
        }
    }
    Ok(report)
}

async fn detect(
    client: &aws_sdk_rekognition::Client,
    photo: &str,
    variant: &str,
    bytes: &[u8],
) -> Result<Vec<FaceDetail>, GateBenchError> {
    client
        .detect_faces()
        .image(Image::builder().bytes(Blob::new(bytes.to_vec())).build())
        .attributes(Attribute::All)
        .send()
        .await
        .map(|out| out.face_details.unwrap_or_default())
        .map_err(|e| GateBenchError::Detect {
            photo: photo.into(),
            variant: variant.into(),
            detail: format!("{e:?}"),
        })
}

fn judge(
    settings: &IndexerSettings,
    photo_name: &str,
    variant: &str,
    usable: bool,
    bytes: &[u8],
    faces: &[FaceDetail],
) -> Result<Row, String> {
    let info = photo::inspect(bytes).map_err(|e| e.to_string())?;
    let largest = faces.first();
    Ok(Row {
        photo: photo_name.into(),
        variant: variant.into(),
        usable,
        faces: faces.len(),
        confidence: largest.and_then(|f| f.confidence()),
        yaw_pitch_roll: largest.and_then(|f| f.pose()).map(|p| {
            [
                p.yaw().unwrap_or_default(),
                p.pitch().unwrap_or_default(),
                p.roll().unwrap_or_default(),
            ]
        }),
        indexer: gate::check(settings, faces, &info),
        verifier: facegate_verifier::face::check_selfie(faces).err(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A usable genuine face may be refused on at most this many of its variants.
    const MAX_REFUSED_VARIANTS: usize = 1;

    fn workspace_root() -> PathBuf {
        // This crate sits one folder below the workspace, which holds the photos and models.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("loadgen/ is inside the workspace")
            .to_path_buf()
    }

    /// The issue's bar: no usable genuine face refused on more than one of its variants, and
    /// no clear frontal photo refused on any, with the gates' default settings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gates_refuse_no_usable_genuine_face_twice_and_no_frontal_one_ever() {
        let root = workspace_root();
        let models = ModelSettings {
            models_dir: root.join(".facegate/models"),
            ort_dylib_path: facegate_engine::face::find_onnxruntime(&root),
            workers: 2,
        };
        let args = GateBenchArgs {
            faces: root.join("tests/fixtures/faces"),
            models: models.clone(),
            indexer: IndexerSettings::default(),
        };
        let report = run(args).await.expect("the table runs");
        println!("{report}");
        let per_photo = report.refused_per_photo();
        assert!(per_photo.len() >= 13, "{per_photo:?}");
        assert!(report.frontal.len() >= 5, "{:?}", report.frontal);
        for (photo, refused) in &per_photo {
            let limit = if report.frontal.iter().any(|p| p == photo) {
                0
            } else {
                MAX_REFUSED_VARIANTS
            };
            assert!(
                refused.len() <= limit,
                "{photo} refused on {} usable variants (at most {limit}): {refused:#?}",
                refused.len()
            );
        }
    }
}
