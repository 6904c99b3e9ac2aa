//! Rekognition's `QualityFilter`: which detected faces are good enough to index or match.
//!
//! Rekognition does not publish its bars; these are ours, on the pipeline's measures (all
//! 0-100 or degrees), stricter from LOW to HIGH. `AUTO` is `MEDIUM`. A face that fails gets
//! Rekognition's reasons; `LOW_FACE_QUALITY` is added when two or more of confidence,
//! brightness and sharpness fail together.

use super::error::ApiError;
use crate::face::Face;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QualityFilter {
    None,
    Auto,
    Low,
    Medium,
    High,
}

/// The bars of one level.
struct Bars {
    min_confidence: f32,
    max_angle: f32,
    min_brightness: f32,
    min_sharpness: f32,
    /// Smallest face side, in pixels of the (oriented) image.
    min_face_pixels: f32,
}

const LOW: Bars = Bars {
    min_confidence: 50.0,
    max_angle: 75.0,
    min_brightness: 5.0,
    min_sharpness: 2.0,
    min_face_pixels: 16.0,
};
const MEDIUM: Bars = Bars {
    min_confidence: 70.0,
    max_angle: 60.0,
    min_brightness: 10.0,
    min_sharpness: 5.0,
    min_face_pixels: 32.0,
};
const HIGH: Bars = Bars {
    min_confidence: 90.0,
    max_angle: 45.0,
    min_brightness: 20.0,
    min_sharpness: 10.0,
    min_face_pixels: 48.0,
};

impl QualityFilter {
    /// Parse the request's value, or use `default` when it is absent.
    pub fn parse(value: Option<&str>, default: QualityFilter) -> Result<Self, ApiError> {
        Ok(match value {
            None => default,
            Some("NONE") => QualityFilter::None,
            Some("AUTO") => QualityFilter::Auto,
            Some("LOW") => QualityFilter::Low,
            Some("MEDIUM") => QualityFilter::Medium,
            Some("HIGH") => QualityFilter::High,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "QualityFilter {other:?} must be one of NONE, AUTO, LOW, MEDIUM, HIGH"
                )));
            }
        })
    }

    /// Why `face` fails this filter (empty: it passes). `width`/`height`: the image's pixels.
    pub fn reasons(self, face: &Face, width: u32, height: u32) -> Vec<&'static str> {
        let bars = match self {
            QualityFilter::None => return Vec::new(),
            QualityFilter::Low => &LOW,
            QualityFilter::Auto | QualityFilter::Medium => &MEDIUM,
            QualityFilter::High => &HIGH,
        };
        let mut reasons = Vec::new();
        if face.pose.yaw.abs() > bars.max_angle || face.pose.pitch.abs() > bars.max_angle {
            reasons.push("EXTREME_POSE");
        }
        let low_brightness = face.quality.brightness < bars.min_brightness;
        let low_sharpness = face.quality.sharpness < bars.min_sharpness;
        let low_confidence = face.confidence < bars.min_confidence;
        if low_brightness {
            reasons.push("LOW_BRIGHTNESS");
        }
        if low_sharpness {
            reasons.push("LOW_SHARPNESS");
        }
        if low_confidence {
            reasons.push("LOW_CONFIDENCE");
        }
        let side =
            (face.bounding_box.width * width as f32).min(face.bounding_box.height * height as f32);
        if side < bars.min_face_pixels {
            reasons.push("SMALL_BOUNDING_BOX");
        }
        if [low_brightness, low_sharpness, low_confidence]
            .iter()
            .filter(|&&b| b)
            .count()
            >= 2
        {
            reasons.push("LOW_FACE_QUALITY");
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{BoundingBox, EMBEDDING_DIM, Embedding, Landmark, Pose, Quality};

    fn face(confidence: f32, yaw: f32, brightness: f32, sharpness: f32, width: f32) -> Face {
        Face {
            bounding_box: BoundingBox {
                left: 0.1,
                top: 0.1,
                width,
                height: width,
            },
            confidence,
            landmarks: [Landmark { x: 0.5, y: 0.5 }; 5],
            pose: Pose {
                roll: 0.0,
                yaw,
                pitch: 0.0,
            },
            quality: Quality {
                brightness,
                sharpness,
            },
            embedding: Embedding([0.0; EMBEDDING_DIM]),
        }
    }

    #[test]
    fn a_good_face_passes_every_level() {
        let good = face(99.0, 5.0, 60.0, 60.0, 0.3);
        for level in [
            QualityFilter::None,
            QualityFilter::Auto,
            QualityFilter::Low,
            QualityFilter::Medium,
            QualityFilter::High,
        ] {
            assert!(level.reasons(&good, 640, 480).is_empty(), "{level:?}");
        }
    }

    #[test]
    fn each_problem_gets_its_reason() {
        let f = face(40.0, 80.0, 1.0, 1.0, 0.01);
        assert!(QualityFilter::None.reasons(&f, 640, 480).is_empty());
        assert_eq!(
            QualityFilter::Auto.reasons(&f, 640, 480),
            [
                "EXTREME_POSE",
                "LOW_BRIGHTNESS",
                "LOW_SHARPNESS",
                "LOW_CONFIDENCE",
                "SMALL_BOUNDING_BOX",
                "LOW_FACE_QUALITY"
            ]
        );
        assert_eq!(
            QualityFilter::High.reasons(&face(99.0, 50.0, 60.0, 60.0, 0.3), 640, 480),
            ["EXTREME_POSE"]
        );
        assert!(
            QualityFilter::Medium
                .reasons(&face(99.0, 50.0, 60.0, 60.0, 0.3), 640, 480)
                .is_empty()
        );
    }

    #[test]
    fn unknown_levels_are_refused() {
        assert_eq!(
            QualityFilter::parse(None, QualityFilter::Auto).unwrap(),
            QualityFilter::Auto
        );
        assert_eq!(
            QualityFilter::parse(Some("HIGH"), QualityFilter::None).unwrap(),
            QualityFilter::High
        );
        assert!(QualityFilter::parse(Some("high"), QualityFilter::None).is_err());
    }
}
