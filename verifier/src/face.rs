//! The face work of one answer: the quality gate (`DetectFaces`) and the 1:1 match of the
//! selfie against the user's registered face (`SearchFacesByImage`).
//!
//! Every call waits for the process's face-service limiter first and runs under the request's
//! deadline. A face-service error or timeout is a *refusal* (`face-service-error`), never a
//! success.
//!
//! Why `SearchFacesByImage` and not `CompareFaces`: the registered face is already a vector
//! in the collection (the very face dedup-search accepted), so matching against it needs the
//! selfie only. `CompareFaces` would need the registration photo fetched from S3 and embedded
//! again on every sign-in: a second S3 read and twice the model work inside the 5 s budget.
//! The search returns the collection's best matches with their face ids; the answer is
//! correct only if *the user's own* face id is among them at or above the threshold. It is
//! 1:1 in effect: a match with anyone else's face counts for nothing.

use aws_sdk_rekognition::error::ProvideErrorMetadata;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{Attribute, FaceDetail, Image, QualityFilter};
use bytes::Bytes;
use facegate_shared::events::AuthFailureReason;
use facegate_shared::quality::QualityIssue;

use crate::deadline::Deadline;
use crate::service::Verifier;

/// Detections below this confidence are not counted as faces (Rekognition reports faint
/// candidates too). 85, as the indexer's default: midway (in the detector's score) between the
/// highest non-face candidate measured and the lowest genuine face on any usable variant
/// (engine/CALIBRATION.md, "Confidence").
pub const MIN_FACE_CONFIDENCE: f32 = 85.0;
/// Yaw or pitch beyond this many degrees is too far turned for a reliable match.
pub const MAX_POSE_DEGREES: f32 = 45.0;
/// How many matches to ask for: Rekognition's largest `MaxFaces`. Only faces at or above
/// [`REPORT_FLOOR`] count against it, so the user's face is pushed out only if thousands of
/// other faces resemble the selfie that closely. (With 100 and no floor, a person registered
/// under 125 accounts, as dedup's `flag` policy allows, failed 4 genuine sign-ins in 10: the
/// soak benchmark found it.)
const MAX_MATCHES: i32 = 4096;
/// The lowest similarity asked for: below the verification threshold, so that a refusal
/// still reports how close a near miss came (for the auth event; never to the client), and
/// above every impostor pair measured in the calibration (`engine/CALIBRATION.md`), so that
/// unrelated faces do not fill the answer.
const REPORT_FLOOR: f32 = 50.0;

/// The outcome of the face work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaceVerdict {
    Match {
        similarity: f32,
    },
    Refused {
        reason: AuthFailureReason,
        similarity: Option<f32>,
    },
}

fn refused(reason: AuthFailureReason) -> FaceVerdict {
    FaceVerdict::Refused {
        reason,
        similarity: None,
    }
}

/// JPEG or PNG, by their magic bytes: the formats Rekognition reads.
pub fn looks_like_an_image(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// Checks the selfie and matches it against `face_id`.
pub async fn verify_selfie(
    verifier: &Verifier,
    selfie: Bytes,
    face_id: &str,
    deadline: &Deadline,
) -> FaceVerdict {
    if !looks_like_an_image(&selfie) {
        return refused(AuthFailureReason::NotAnImage);
    }
    if let Err(reason) = quality_gate(verifier, selfie.clone(), deadline).await {
        return refused(reason);
    }
    match_face(verifier, selfie, face_id, deadline).await
}

fn image(bytes: Bytes) -> Image {
    Image::builder().bytes(Blob::new(bytes.to_vec())).build()
}

/// Exactly one clear face, not turned away.
async fn quality_gate(
    verifier: &Verifier,
    selfie: Bytes,
    deadline: &Deadline,
) -> Result<(), AuthFailureReason> {
    let call = async {
        verifier.limiter().acquire().await;
        verifier
            .rekognition()
            .detect_faces()
            .image(image(selfie))
            .attributes(Attribute::Default)
            .send()
            .await
    };
    let detected = match deadline.run("DetectFaces", call).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(face_service_refusal("DetectFaces", &e, e.code())),
        Err(late) => {
            tracing::warn!(error = %late, "face service too slow: refusing");
            return Err(AuthFailureReason::FaceServiceError);
        }
    };
    check_selfie(detected.face_details()).map_err(AuthFailureReason::Quality)
}

/// The gate's decision on DetectFaces' answer for a selfie: exactly one face counted (at or
/// above [`MIN_FACE_CONFIDENCE`]) and not turned beyond [`MAX_POSE_DEGREES`]. Pure, so the
/// refusal table (`facegate bench gate`) applies exactly this to the engine's answers.
pub fn check_selfie(faces: &[FaceDetail]) -> Result<(), QualityIssue> {
    let faces: Vec<_> = faces
        .iter()
        .filter(|f| f.confidence().unwrap_or(0.0) >= MIN_FACE_CONFIDENCE)
        .collect();
    match faces.as_slice() {
        [] => Err(QualityIssue::NoFace),
        [face] => {
            let turned = face.pose().is_some_and(|p| {
                p.yaw().unwrap_or(0.0).abs() > MAX_POSE_DEGREES
                    || p.pitch().unwrap_or(0.0).abs() > MAX_POSE_DEGREES
            });
            if turned {
                Err(QualityIssue::ExtremePose)
            } else {
                Ok(())
            }
        }
        _ => Err(QualityIssue::MultipleFaces),
    }
}

/// The user's own face among the selfie's matches, at or above the threshold.
async fn match_face(
    verifier: &Verifier,
    selfie: Bytes,
    face_id: &str,
    deadline: &Deadline,
) -> FaceVerdict {
    let threshold = verifier.settings().threshold;
    let call = async {
        verifier.limiter().acquire().await;
        verifier
            .rekognition()
            .search_faces_by_image()
            .collection_id(verifier.collection())
            .image(image(selfie))
            .max_faces(MAX_MATCHES)
            .face_match_threshold(REPORT_FLOOR.min(threshold))
            // The quality gate above already decided; a second, different filter would only
            // turn some selfies into errors.
            .quality_filter(QualityFilter::None)
            .send()
            .await
    };
    let found = match deadline.run("SearchFacesByImage", call).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            // Rekognition answers "no face in the image" with InvalidParameterException.
            if e.code() == Some("InvalidParameterException") {
                return refused(AuthFailureReason::Quality(QualityIssue::NoFace));
            }
            return refused(face_service_refusal("SearchFacesByImage", &e, e.code()));
        }
        Err(late) => {
            tracing::warn!(error = %late, "face service too slow: refusing");
            return refused(AuthFailureReason::FaceServiceError);
        }
    };
    let similarity = found
        .face_matches()
        .iter()
        .filter(|m| m.face().and_then(|f| f.face_id()) == Some(face_id))
        .filter_map(|m| m.similarity())
        .reduce(f32::max);
    decide(similarity, threshold)
}

/// The verdict from the registered face's similarity (if it was among the matches).
fn decide(similarity: Option<f32>, threshold: f32) -> FaceVerdict {
    match similarity {
        Some(similarity) if similarity >= threshold => FaceVerdict::Match { similarity },
        similarity => FaceVerdict::Refused {
            reason: AuthFailureReason::NoMatch,
            similarity,
        },
    }
}

fn face_service_refusal(
    call: &'static str,
    error: &(dyn std::error::Error + 'static),
    code: Option<&str>,
) -> AuthFailureReason {
    if matches!(
        code,
        Some("InvalidImageFormatException" | "ImageTooLargeException")
    ) {
        return AuthFailureReason::NotAnImage;
    }
    tracing::warn!(call, error = %facegate_shared::report::chain(error), "face service failed: refusing");
    AuthFailureReason::FaceServiceError
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert!(looks_like_an_image(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]));
        assert!(looks_like_an_image(b"\x89PNG\r\n\x1a\n...."));
        assert!(!looks_like_an_image(b"GIF89a"));
        assert!(!looks_like_an_image(b"<html>"));
        assert!(!looks_like_an_image(b""));
    }

    #[test]
    fn the_threshold_is_inclusive_and_absence_fails() {
        assert_eq!(
            decide(Some(99.0), 99.0),
            FaceVerdict::Match { similarity: 99.0 }
        );
        assert_eq!(
            decide(Some(98.9), 99.0),
            FaceVerdict::Refused {
                reason: AuthFailureReason::NoMatch,
                similarity: Some(98.9)
            }
        );
        assert_eq!(
            decide(None, 99.0),
            FaceVerdict::Refused {
                reason: AuthFailureReason::NoMatch,
                similarity: None
            }
        );
    }
}
