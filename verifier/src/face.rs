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
use aws_sdk_rekognition::types::{Attribute, FaceDetail, Image, LandmarkType, QualityFilter};
use bytes::Bytes;
use facegate_shared::events::AuthFailureReason;
use facegate_shared::quality::QualityIssue;

use crate::deadline::Deadline;
use crate::liveness::{self, Frame, Sequence};
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
    let threshold = verifier.settings().threshold;
    match_face(verifier, selfie, face_id, threshold, deadline).await
}

/// Checks the frames of a liveness challenge, in this order, each failure its own reason:
/// every frame an image with exactly one clear face (the quality gate's reasons) showing its
/// step's pose (`liveness-wrong-pose`); the frontal frame the registered face at the
/// authentication threshold (`no-match`); every other frame the registered face and the
/// frontal frame's person at the same-person threshold (`liveness-not-same-person`).
/// The frames' freshness and novelty are checked before (`crate::triggers::verify`).
pub async fn verify_frames(
    verifier: &Verifier,
    frames: &[Frame],
    steps: &Sequence,
    face_id: &str,
    deadline: &Deadline,
) -> FaceVerdict {
    if frames.len() != steps.steps().len() {
        return refused(AuthFailureReason::LivenessFrameMissing);
    }
    if !frames.iter().all(|f| looks_like_an_image(&f.bytes)) {
        return refused(AuthFailureReason::NotAnImage);
    }
    let poses = futures::future::join_all(
        frames
            .iter()
            .map(|frame| quality_gate(verifier, frame.bytes.clone(), deadline)),
    )
    .await;
    let mut measured = Vec::with_capacity(frames.len());
    for (pose, step) in poses.into_iter().zip(steps.steps()) {
        match pose {
            Err(reason) => return refused(reason),
            Ok(pose) if !step.shown_by(pose.yaw, pose.pitch) => {
                tracing::info!(step = %step, yaw = pose.yaw, pitch = pose.pitch, "frame does not show its step");
                return refused(AuthFailureReason::LivenessWrongPose);
            }
            Ok(pose) => measured.push(pose),
        }
    }
    let frontal = steps.frontal();
    let proportion = |i: usize| {
        measured[i]
            .landmarks
            .and_then(|l| liveness::proportion(l, frames[i].width, frames[i].height))
    };
    for i in (0..frames.len()).filter(|i| *i != frontal) {
        let fits = match (proportion(i), proportion(frontal)) {
            (Some(turned), Some(front)) => {
                liveness::foreshortening_fits(turned, front, measured[i].yaw)
            }
            _ => false,
        };
        if !fits {
            tracing::info!(
                frame = i + 1,
                yaw = measured[i].yaw,
                "turn narrower than a head's: a tilted picture"
            );
            return refused(AuthFailureReason::LivenessWrongPose);
        }
    }
    let settings = verifier.settings();
    let same_person = settings.liveness_same_person_threshold;
    let matches = futures::future::join_all(frames.iter().enumerate().map(|(i, frame)| {
        let threshold = if i == frontal {
            settings.threshold
        } else {
            same_person
        };
        match_face(verifier, frame.bytes.clone(), face_id, threshold, deadline)
    }))
    .await;
    let mut verdict = refused(AuthFailureReason::NoMatch);
    for (i, outcome) in matches.into_iter().enumerate() {
        match outcome {
            FaceVerdict::Match { .. } if i == frontal => verdict = outcome,
            FaceVerdict::Match { .. } => {}
            FaceVerdict::Refused {
                reason: AuthFailureReason::NoMatch,
                similarity,
            } if i != frontal => {
                return FaceVerdict::Refused {
                    reason: AuthFailureReason::LivenessNotSamePerson,
                    similarity,
                };
            }
            refusal => return refusal,
        }
    }
    let others = (0..frames.len()).filter(|i| *i != frontal);
    let compared = futures::future::join_all(others.map(|i| {
        compare(
            verifier,
            frames[frontal].bytes.clone(),
            frames[i].bytes.clone(),
            same_person,
            deadline,
        )
    }))
    .await;
    for outcome in compared {
        if let Err(reason) = outcome {
            return refused(reason);
        }
    }
    verdict
}

/// Whether `target` holds the person of `source` at `threshold` (`CompareFaces`).
async fn compare(
    verifier: &Verifier,
    source: Bytes,
    target: Bytes,
    threshold: f32,
    deadline: &Deadline,
) -> Result<(), AuthFailureReason> {
    let call = async {
        verifier.limiter().acquire().await;
        verifier
            .rekognition()
            .compare_faces()
            .source_image(image(source))
            .target_image(image(target))
            .similarity_threshold(threshold)
            .quality_filter(QualityFilter::None)
            .send()
            .await
    };
    match deadline.run("CompareFaces", call).await {
        Ok(Ok(out)) if !out.face_matches().is_empty() => Ok(()),
        Ok(Ok(_)) => Err(AuthFailureReason::LivenessNotSamePerson),
        Ok(Err(e)) => {
            if e.code() == Some("InvalidParameterException") {
                return Err(AuthFailureReason::Quality(QualityIssue::NoFace));
            }
            Err(face_service_refusal("CompareFaces", &e, e.code()))
        }
        Err(late) => {
            tracing::warn!(error = %late, "face service too slow: refusing");
            Err(AuthFailureReason::FaceServiceError)
        }
    }
}

/// The pose of the one face a frame holds, in degrees (Rekognition's convention).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FacePose {
    pub yaw: f32,
    pub pitch: f32,
    /// eyeLeft, eyeRight, mouthLeft, mouthRight, normalised to the image, when reported.
    pub landmarks: Option<[(f32, f32); 4]>,
}

fn image(bytes: Bytes) -> Image {
    Image::builder().bytes(Blob::new(bytes.to_vec())).build()
}

/// Exactly one clear face, not turned away: its pose.
async fn quality_gate(
    verifier: &Verifier,
    selfie: Bytes,
    deadline: &Deadline,
) -> Result<FacePose, AuthFailureReason> {
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
    let faces = detected.face_details();
    check_selfie(faces).map_err(AuthFailureReason::Quality)?;
    let face = faces
        .iter()
        .find(|f| f.confidence().unwrap_or(0.0) >= MIN_FACE_CONFIDENCE);
    let pose = face.and_then(|f| f.pose());
    let landmark = |kind: LandmarkType| {
        face?
            .landmarks()
            .iter()
            .find(|l| l.r#type() == Some(&kind))
            .and_then(|l| Some((l.x()?, l.y()?)))
    };
    let landmarks = (|| {
        Some([
            landmark(LandmarkType::EyeLeft)?,
            landmark(LandmarkType::EyeRight)?,
            landmark(LandmarkType::MouthLeft)?,
            landmark(LandmarkType::MouthRight)?,
        ])
    })();
    Ok(FacePose {
        yaw: pose.and_then(|p| p.yaw()).unwrap_or(0.0),
        pitch: pose.and_then(|p| p.pitch()).unwrap_or(0.0),
        landmarks,
    })
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
    threshold: f32,
    deadline: &Deadline,
) -> FaceVerdict {
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
