//! Calibration: how a cosine between two SFace embeddings becomes Rekognition's 0-100
//! similarity, and the command that measures it on labelled photos.
//!
//! The mapping is a logistic curve through two anchors (see engine/CALIBRATION.md for the data):
//! - [`COSINE_AT_99`]: similarity 99, the threshold Rekognition recommends for authentication,
//!   sits midway between the highest impostor cosine and the lowest genuine cosine measured on
//!   the fixture photos, for the widest margin on both sides;
//! - [`COSINE_AT_80`]: similarity 80, Rekognition's default `FaceMatchThreshold`, sits on
//!   OpenCV's published SFace threshold (cosine 0.363), a looser operating point.
//!
//! `similarity = 100 / (1 + exp(-STEEPNESS · (cosine - MIDPOINT)))`, strictly increasing, so
//! every similarity threshold is exactly one cosine threshold ([`cosine_for_similarity`]).
//!
//! [`calibrate`] recomputes the evidence: every genuine and impostor pair of a folder of photos
//! named `<person>_<n>.<jpg|png>`, and the false-match and false-non-match rates at the usual
//! thresholds.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Embedding, FaceModels, ImageError};

/// Cosine that maps to similarity 99 (midway between impostors and genuine pairs measured).
pub const COSINE_AT_99: f32 = 0.457;
/// Cosine that maps to similarity 80 (OpenCV's published SFace cosine threshold).
pub const COSINE_AT_80: f32 = 0.363;

/// The thresholds the calibration report tabulates.
pub const REPORT_THRESHOLDS: [f32; 6] = [50.0, 70.0, 80.0, 90.0, 95.0, 99.0];

/// Logistic steepness: ln(99) - ln(4) logits between the two anchors.
fn steepness() -> f32 {
    (99f32.ln() - 4f32.ln()) / (COSINE_AT_99 - COSINE_AT_80)
}

/// Cosine at which similarity is 50.
fn midpoint() -> f32 {
    COSINE_AT_99 - 99f32.ln() / steepness()
}

/// Rekognition-scale similarity (0-100) of a cosine (-1 to 1).
pub fn similarity_from_cosine(cosine: f32) -> f32 {
    let logit = steepness() * (cosine - midpoint());
    (100.0 / (1.0 + (-logit).exp())).clamp(0.0, 100.0)
}

/// The cosine at which similarity equals `similarity` (the inverse of
/// [`similarity_from_cosine`]): lets a search compare cosines against a threshold directly.
/// 0 and below give -1 (everything matches), 100 and above give +inf (nothing does).
pub fn cosine_for_similarity(similarity: f32) -> f32 {
    if similarity <= 0.0 {
        return -1.0;
    }
    if similarity >= 100.0 {
        return f32::INFINITY;
    }
    midpoint() + (similarity / (100.0 - similarity)).ln() / steepness()
}

/// One pair of photos compared.
#[derive(Clone, Debug, PartialEq)]
pub struct PairScore {
    pub first: String,
    pub second: String,
    /// Both photos show the same person.
    pub genuine: bool,
    pub cosine: f32,
    pub similarity: f32,
}

/// Error counts at one similarity threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdRates {
    pub threshold: f32,
    /// Impostor pairs at or above the threshold.
    pub false_matches: usize,
    pub impostors: usize,
    /// Genuine pairs below the threshold.
    pub false_non_matches: usize,
    pub genuines: usize,
}

impl ThresholdRates {
    pub fn false_match_rate(&self) -> f64 {
        ratio(self.false_matches, self.impostors)
    }

    pub fn false_non_match_rate(&self) -> f64 {
        ratio(self.false_non_matches, self.genuines)
    }
}

fn ratio(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// The evidence behind the mapping, measured on one folder of labelled photos.
#[derive(Clone, Debug)]
pub struct CalibrationReport {
    pub folder: PathBuf,
    /// Photo file names, with the person each shows.
    pub photos: Vec<(String, String)>,
    /// Every pair, genuine ones first, each group by decreasing cosine.
    pub pairs: Vec<PairScore>,
}

impl CalibrationReport {
    pub fn genuine(&self) -> impl Iterator<Item = &PairScore> {
        self.pairs.iter().filter(|p| p.genuine)
    }

    pub fn impostors(&self) -> impl Iterator<Item = &PairScore> {
        self.pairs.iter().filter(|p| !p.genuine)
    }

    /// The least alike genuine pair.
    pub fn min_genuine(&self) -> Option<&PairScore> {
        self.genuine().min_by(|a, b| a.cosine.total_cmp(&b.cosine))
    }

    /// The most alike impostor pair.
    pub fn max_impostor(&self) -> Option<&PairScore> {
        self.impostors()
            .max_by(|a, b| a.cosine.total_cmp(&b.cosine))
    }

    /// False matches and false non-matches at a similarity threshold (a pair matches when its
    /// similarity is at least the threshold, as in Rekognition).
    pub fn rates(&self, threshold: f32) -> ThresholdRates {
        let matches = |p: &&PairScore| p.similarity >= threshold;
        ThresholdRates {
            threshold,
            false_matches: self.impostors().filter(matches).count(),
            impostors: self.impostors().count(),
            false_non_matches: self.genuine().filter(|p| !matches(p)).count(),
            genuines: self.genuine().count(),
        }
    }
}

impl fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let people: std::collections::BTreeSet<&str> =
            self.photos.iter().map(|(_, p)| p.as_str()).collect();
        writeln!(
            f,
            "Calibration on {}: {} photos of {} people, {} genuine and {} impostor pairs",
            self.folder.display(),
            self.photos.len(),
            people.len(),
            self.genuine().count(),
            self.impostors().count()
        )?;
        writeln!(
            f,
            "mapping: logistic, cosine {COSINE_AT_80} -> 80, cosine {COSINE_AT_99} -> 99"
        )?;
        for (title, genuine) in [("genuine pairs", true), ("impostor pairs", false)] {
            writeln!(f, "\n{title}:")?;
            writeln!(f, "  {:>7}  {:>10}  pair", "cosine", "similarity")?;
            for pair in self.pairs.iter().filter(|p| p.genuine == genuine) {
                writeln!(
                    f,
                    "  {:>7.4}  {:>10.4}  {} ~ {}",
                    pair.cosine, pair.similarity, pair.first, pair.second
                )?;
            }
        }
        writeln!(f)?;
        if let Some(p) = self.min_genuine() {
            writeln!(
                f,
                "min genuine:  cosine {:.4}, similarity {:.4} ({} ~ {})",
                p.cosine, p.similarity, p.first, p.second
            )?;
        }
        if let Some(p) = self.max_impostor() {
            writeln!(
                f,
                "max impostor: cosine {:.4}, similarity {:.4} ({} ~ {})",
                p.cosine, p.similarity, p.first, p.second
            )?;
        }
        if let (Some(g), Some(i)) = (self.min_genuine(), self.max_impostor()) {
            let at_99 = cosine_for_similarity(99.0);
            writeln!(
                f,
                "margins at threshold 99 (cosine {at_99:.4}): genuine {:+.4}, impostor {:+.4} (cosine)",
                g.cosine - at_99,
                at_99 - i.cosine
            )?;
        }
        writeln!(
            f,
            "\n{:>9}  {:>7}  {:>22}  {:>22}",
            "threshold", "cosine", "false match rate", "false non-match rate"
        )?;
        for threshold in REPORT_THRESHOLDS {
            let r = self.rates(threshold);
            writeln!(
                f,
                "{:>9}  {:>7.4}  {:>8.4} ({:>3} of {:>3})  {:>8.4} ({:>3} of {:>3})",
                threshold,
                cosine_for_similarity(threshold),
                r.false_match_rate(),
                r.false_matches,
                r.impostors,
                r.false_non_match_rate(),
                r.false_non_matches,
                r.genuines
            )?;
        }
        Ok(())
    }
}

/// Why a calibration could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("analysing {path}: {source}")]
    Image { path: PathBuf, source: ImageError },
    #[error("{path} shows {faces} faces; calibration photos must show exactly one")]
    FaceCount { path: PathBuf, faces: usize },
    #[error("{0} holds no photo named <person>_<n>.jpg or .png")]
    Empty(PathBuf),
}

/// The person a calibration photo shows: its file stem up to the last `_`
/// (`lin_manuel_miranda_1.png` shows `lin_manuel_miranda`).
pub fn person_of(file_name: &str) -> Option<&str> {
    let stem = file_name.rsplit_once('.')?.0;
    let (person, number) = stem.rsplit_once('_')?;
    (!person.is_empty() && number.chars().all(|c| c.is_ascii_digit()) && !number.is_empty())
        .then_some(person)
}

/// Embed every `<person>_<n>.jpg|jpeg|png` in `folder` (each must show exactly one face) and
/// score every pair.
pub fn calibrate(
    models: &FaceModels,
    folder: &Path,
) -> Result<CalibrationReport, CalibrationError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CalibrationError::Io { path, source }
    };
    let mut files: Vec<(String, String, PathBuf)> = std::fs::read_dir(folder)
        .map_err(io(folder))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let lower = name.to_ascii_lowercase();
            let is_photo = [".jpg", ".jpeg", ".png"]
                .iter()
                .any(|ext| lower.ends_with(ext));
            let person = person_of(&name)?.to_string();
            is_photo.then(|| (name, person, entry.path()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CalibrationError::Empty(folder.to_path_buf()));
    }

    let mut embedded: Vec<(String, String, Embedding)> = Vec::new();
    for (name, person, path) in files {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let analysis = models
            .analyze(&bytes)
            .map_err(|source| CalibrationError::Image {
                path: path.clone(),
                source,
            })?;
        if analysis.faces.len() != 1 {
            return Err(CalibrationError::FaceCount {
                path,
                faces: analysis.faces.len(),
            });
        }
        let embedding = analysis.faces[0].embedding.clone();
        embedded.push((name, person, embedding));
    }

    let mut pairs = Vec::new();
    for (i, (first, first_person, a)) in embedded.iter().enumerate() {
        for (second, second_person, b) in &embedded[i + 1..] {
            let cosine = a.cosine(b);
            pairs.push(PairScore {
                first: first.clone(),
                second: second.clone(),
                genuine: first_person == second_person,
                cosine,
                similarity: similarity_from_cosine(cosine),
            });
        }
    }
    pairs.sort_by(|a, b| {
        b.genuine
            .cmp(&a.genuine)
            .then(b.cosine.total_cmp(&a.cosine))
    });
    Ok(CalibrationReport {
        folder: folder.to_path_buf(),
        photos: embedded
            .into_iter()
            .map(|(name, person, _)| (name, person))
            .collect(),
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_land_on_their_similarities() {
        assert!((similarity_from_cosine(COSINE_AT_99) - 99.0).abs() < 1e-3);
        assert!((similarity_from_cosine(COSINE_AT_80) - 80.0).abs() < 1e-3);
        assert!((similarity_from_cosine(midpoint()) - 50.0).abs() < 1e-3);
    }

    #[test]
    fn mapping_is_monotonic_and_bounded() {
        let mut previous = -1.0;
        for step in 0..=2000 {
            let cosine = -1.0 + step as f32 / 1000.0;
            let s = similarity_from_cosine(cosine);
            assert!((0.0..=100.0).contains(&s), "{cosine} -> {s}");
            assert!(s >= previous, "{cosine} -> {s} < {previous}");
            previous = s;
        }
        assert!(similarity_from_cosine(1.0) > 99.99);
        assert!(similarity_from_cosine(0.0) < 0.1);
    }

    #[test]
    fn threshold_inverse_round_trips() {
        for threshold in [1.0, 50.0, 80.0, 90.0, 99.0, 99.9] {
            let back = similarity_from_cosine(cosine_for_similarity(threshold));
            assert!((back - threshold).abs() < 1e-2, "{threshold} -> {back}");
        }
        assert_eq!(cosine_for_similarity(0.0), -1.0);
        assert_eq!(cosine_for_similarity(100.0), f32::INFINITY);
    }

    #[test]
    fn looser_threshold_is_a_lower_cosine() {
        assert!(cosine_for_similarity(80.0) < cosine_for_similarity(99.0));
    }

    #[test]
    fn person_comes_from_the_file_name() {
        assert_eq!(
            person_of("lin_manuel_miranda_1.png"),
            Some("lin_manuel_miranda")
        );
        assert_eq!(person_of("obama_12.jpg"), Some("obama"));
        assert_eq!(person_of("SOURCE.md"), None);
        assert_eq!(person_of("obama.jpg"), None);
        assert_eq!(person_of("_1.jpg"), None);
    }

    fn pair(genuine: bool, cosine: f32) -> PairScore {
        PairScore {
            first: "a".into(),
            second: "b".into(),
            genuine,
            cosine,
            similarity: similarity_from_cosine(cosine),
        }
    }

    #[test]
    fn rates_count_both_kinds_of_error() {
        let report = CalibrationReport {
            folder: PathBuf::from("x"),
            photos: vec![],
            pairs: vec![
                pair(true, 0.9),
                pair(true, 0.3),
                pair(false, 0.1),
                pair(false, 0.8),
            ],
        };
        let r = report.rates(99.0);
        assert_eq!((r.false_matches, r.impostors), (1, 2));
        assert_eq!((r.false_non_matches, r.genuines), (1, 2));
        assert_eq!(r.false_match_rate(), 0.5);
        assert_eq!(report.min_genuine().unwrap().cosine, 0.3);
        assert_eq!(report.max_impostor().unwrap().cosine, 0.8);
        let text = report.to_string();
        assert!(
            text.contains("false match rate") && text.contains("0.8000"),
            "{text}"
        );
    }
}
