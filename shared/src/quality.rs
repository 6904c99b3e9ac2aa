//! The named reasons a photo fails the quality gate, shared by registration (a rejected
//! upload) and sign-in (a refused selfie).

use serde::{Deserialize, Serialize};

/// One refusal of the quality gate. On the wire, a kebab-case code (`no-face`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QualityIssue {
    /// No face was found.
    NoFace,
    /// More than one face: a registration or sign-in photo shows exactly one person.
    MultipleFaces,
    /// The head is turned or tilted too far for a reliable match.
    ExtremePose,
    /// Too blurry (Rekognition's `Sharpness` below the threshold).
    Blurry,
    TooDark,
    TooBright,
    /// The face is too small in the picture (too few pixels to match reliably).
    FaceTooSmall,
}
