//! The quality gate: a registration photo must show exactly one face, frontal enough, sharp
//! enough, neither too dark nor too bright, and large enough. Every refusal is a named
//! [`QualityIssue`], and all of them are reported at once so the user fixes everything in one
//! go. Pure logic over DetectFaces' answer, so it is tested without a face service.

use aws_sdk_rekognition::types::FaceDetail;
use facegate_shared::quality::QualityIssue;

use super::photo::PhotoInfo;
use super::settings::IndexerSettings;

/// The issues of a photo; empty when it passes.
pub fn check(
    settings: &IndexerSettings,
    faces: &[FaceDetail],
    photo: &PhotoInfo,
) -> Vec<QualityIssue> {
    let counted: Vec<&FaceDetail> = faces
        .iter()
        .filter(|f| f.confidence().unwrap_or_default() >= settings.min_confidence)
        .collect();
    let face = match counted.as_slice() {
        [] => return vec![QualityIssue::NoFace],
        [face] => *face,
        _ => return vec![QualityIssue::MultipleFaces],
    };
    let mut issues = Vec::new();
    // Rekognition always reports these with Attributes ALL; a measure it left out is not held
    // against the photo.
    if let Some(pose) = face.pose() {
        let turned =
            |angle: Option<f32>| angle.unwrap_or_default().abs() > settings.max_pose_degrees;
        if turned(pose.yaw()) || turned(pose.pitch()) {
            issues.push(QualityIssue::ExtremePose);
        }
    }
    if let Some(quality) = face.quality() {
        if quality
            .sharpness()
            .is_some_and(|s| s < settings.min_sharpness)
        {
            issues.push(QualityIssue::Blurry);
        }
        match quality.brightness() {
            Some(b) if b < settings.min_brightness => issues.push(QualityIssue::TooDark),
            Some(b) if b > settings.max_brightness => issues.push(QualityIssue::TooBright),
            _ => {}
        }
    }
    if let Some(bbox) = face.bounding_box() {
        let width = bbox.width().unwrap_or_default() * photo.width as f32;
        let height = bbox.height().unwrap_or_default() * photo.height as f32;
        if width.min(height) < settings.min_face_pixels {
            issues.push(QualityIssue::FaceTooSmall);
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexer::photo::PhotoFormat;
    use aws_sdk_rekognition::types::{BoundingBox, ImageQuality, Pose};

    const PHOTO: PhotoInfo = PhotoInfo {
        format: PhotoFormat::Jpeg,
        width: 1000,
        height: 800,
    };

    fn face(confidence: f32, yaw: f32, sharpness: f32, brightness: f32, side: f32) -> FaceDetail {
        FaceDetail::builder()
            .confidence(confidence)
            .pose(Pose::builder().yaw(yaw).pitch(0.0).roll(0.0).build())
            .quality(
                ImageQuality::builder()
                    .sharpness(sharpness)
                    .brightness(brightness)
                    .build(),
            )
            .bounding_box(
                BoundingBox::builder()
                    .width(side / PHOTO.width as f32)
                    .height(side / PHOTO.height as f32)
                    .left(0.1)
                    .top(0.1)
                    .build(),
            )
            .build()
    }

    fn good() -> FaceDetail {
        face(99.0, 5.0, 30.0, 60.0, 300.0)
    }

    #[test]
    fn one_good_face_passes() {
        assert!(check(&IndexerSettings::default(), &[good()], &PHOTO).is_empty());
    }

    #[test]
    fn face_count() {
        let settings = IndexerSettings::default();
        assert_eq!(check(&settings, &[], &PHOTO), [QualityIssue::NoFace]);
        assert_eq!(
            check(&settings, &[good(), good()], &PHOTO),
            [QualityIssue::MultipleFaces]
        );
        // A faint detection in the background is not a second face, and not a face at all.
        let faint = face(40.0, 0.0, 30.0, 60.0, 100.0);
        assert!(check(&settings, &[good(), faint.clone()], &PHOTO).is_empty());
        assert_eq!(check(&settings, &[faint], &PHOTO), [QualityIssue::NoFace]);
    }

    #[test]
    fn every_issue_is_named_together() {
        let settings = IndexerSettings::default();
        let bad = face(99.0, 50.0, 1.0, 5.0, 40.0);
        assert_eq!(
            check(&settings, &[bad], &PHOTO),
            [
                QualityIssue::ExtremePose,
                QualityIssue::Blurry,
                QualityIssue::TooDark,
                QualityIssue::FaceTooSmall
            ]
        );
        let bright = face(99.0, -5.0, 30.0, 99.0, 300.0);
        assert_eq!(
            check(&settings, &[bright], &PHOTO),
            [QualityIssue::TooBright]
        );
    }
}
