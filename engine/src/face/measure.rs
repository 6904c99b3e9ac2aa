//! Measures Rekognition reports per face that the models do not give directly: head pose
//! estimated from the five landmarks, and image quality of the aligned face.
//!
//! # Pose (degrees; a rough geometric estimate, not a fitted 3D head model)
//! Landmarks are in photo pixels, y pointing down.
//! - **Roll**: the angle of the line from the image-left eye to the other eye. Positive when
//!   the face is turned clockwise in the picture (the eye on the image's right is lower).
//! - The landmarks are then rotated by -roll about the eyes' midpoint, so the eyes are level.
//! - **Yaw**: a turned head moves the nose tip sideways off the face's midline (the line from
//!   the eyes' midpoint to the mouth's midpoint) by `depth · sin(yaw)`, while the distance
//!   between the eyes shrinks by `cos(yaw)`. So `yaw = atan(offset / (NOSE_DEPTH · eyes))`, where
//!   [`NOSE_DEPTH`] is the nose tip's height above the eye/mouth plane as a fraction of the
//!   distance between the eyes (0.45 for an average adult head). Positive when the nose points
//!   to the image's right.
//! - **Pitch**: in a frontal face the nose tip sits [`FRONTAL_NOSE_HEIGHT`] of the way from the
//!   eye line down to the mouth line (the ArcFace template's value). Tilting the head moves it by
//!   `depth · sin(pitch)` against an eye-to-mouth distance shrunk by `cos(pitch)`, so
//!   `pitch = atan((frontal - measured) · eye_to_mouth / (NOSE_DEPTH · eyes))`. Positive when the
//!   face looks up (nose tip closer to the eyes).
//!
//! # Quality (0-100), measured on the 112x112 aligned crop so every face is judged at one scale
//! - **Brightness**: mean luminance (Rec. 601: 0.299 R + 0.587 G + 0.114 B) as a percentage
//!   of 255.
//! - **Sharpness**: the variance `v` of the 4-neighbour Laplacian of the luminance (how much
//!   fine edge detail there is), on a logarithmic scale because it spans orders of magnitude:
//!   `100 · log10(v / 10) / 3`, clamped to 0-100, so `v` = 10 (a flat, featureless crop) reads 0,
//!   `v` = 100 reads 33, 1,000 reads 67 and 10,000 or more reads 100. Measured on the fixture
//!   photos (sharp, well-lit portraits) `v` is 470-3,960, sharpness 56-87; the same photos
//!   blurred by a Gaussian of sigma 3 give `v` 4-300, sharpness 0-49 (most 27-35).

use super::align::{ALIGNED_SIDE, ARCFACE_TEMPLATE, AlignedFace};
use super::{Pose, Quality};

/// Height of the nose tip above the plane of the eyes and mouth, as a fraction of the distance
/// between the eyes (generic adult head: ~30 mm against ~65 mm).
pub const NOSE_DEPTH: f64 = 0.45;

/// Where the nose tip sits between the eye line (0) and the mouth line (1) in a frontal face:
/// the ArcFace template's value, ≈ 0.495.
pub const FRONTAL_NOSE_HEIGHT: f64 = {
    let eyes = (ARCFACE_TEMPLATE[0][1] + ARCFACE_TEMPLATE[1][1]) as f64 / 2.0;
    let mouth = (ARCFACE_TEMPLATE[3][1] + ARCFACE_TEMPLATE[4][1]) as f64 / 2.0;
    (ARCFACE_TEMPLATE[2][1] as f64 - eyes) / (mouth - eyes)
};

/// Laplacian variance at which sharpness starts above 0.
pub const SHARPNESS_FLOOR: f64 = 10.0;
/// Laplacian variance at which sharpness reaches 100.
pub const SHARPNESS_FULL: f64 = 10_000.0;

/// Head pose from the five landmarks (photo pixels, detector order).
pub fn pose(landmarks: &[[f32; 2]; 5]) -> Pose {
    let p = landmarks.map(|[x, y]| (f64::from(x), f64::from(y)));
    let (left_eye, right_eye, nose, left_mouth, right_mouth) = (p[0], p[1], p[2], p[3], p[4]);
    let roll = (right_eye.1 - left_eye.1).atan2(right_eye.0 - left_eye.0);

    // Level the eyes: rotate every point by -roll about the eyes' midpoint.
    let centre = midpoint(left_eye, right_eye);
    let (sin, cos) = (-roll).sin_cos();
    let level = |(x, y): (f64, f64)| {
        let (dx, dy) = (x - centre.0, y - centre.1);
        (dx * cos - dy * sin, dx * sin + dy * cos)
    };
    let eyes = level(centre); // (0, 0)
    let mouth = level(midpoint(left_mouth, right_mouth));
    let nose = level(nose);
    let eye_distance = distance(left_eye, right_eye);
    let eye_to_mouth = mouth.1 - eyes.1;

    let (yaw, pitch) = if eye_distance > f64::EPSILON && eye_to_mouth > f64::EPSILON {
        let height = (nose.1 - eyes.1) / eye_to_mouth;
        let midline_x = eyes.0 + (mouth.0 - eyes.0) * height;
        let depth = NOSE_DEPTH * eye_distance;
        let yaw = ((nose.0 - midline_x) / depth).atan();
        let pitch = ((FRONTAL_NOSE_HEIGHT - height) * eye_to_mouth / depth).atan();
        (yaw, pitch)
    } else {
        // Collapsed or upside-down landmarks: no meaningful estimate.
        (0.0, 0.0)
    };
    Pose {
        roll: roll.to_degrees() as f32,
        yaw: yaw.to_degrees() as f32,
        pitch: pitch.to_degrees() as f32,
    }
}

/// Brightness and sharpness of an aligned face.
pub fn quality(face: &AlignedFace) -> Quality {
    let luminance: Vec<f64> = face
        .pixels
        .chunks_exact(3)
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let mean = luminance.iter().sum::<f64>() / luminance.len() as f64;

    let side = ALIGNED_SIDE;
    let at = |x: usize, y: usize| luminance[y * side + x];
    let mut laplacians = Vec::with_capacity((side - 2) * (side - 2));
    for y in 1..side - 1 {
        for x in 1..side - 1 {
            laplacians
                .push(at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y));
        }
    }
    let n = laplacians.len() as f64;
    let lap_mean = laplacians.iter().sum::<f64>() / n;
    let variance = laplacians
        .iter()
        .map(|v| (v - lap_mean).powi(2))
        .sum::<f64>()
        / n;
    Quality {
        brightness: (mean / 255.0 * 100.0) as f32,
        sharpness: sharpness_from_variance(variance) as f32,
    }
}

/// Map a Laplacian variance onto 0-100 (see the module documentation).
pub fn sharpness_from_variance(variance: f64) -> f64 {
    if variance <= SHARPNESS_FLOOR {
        return 0.0;
    }
    let span = (SHARPNESS_FULL / SHARPNESS_FLOOR).log10();
    (100.0 * (variance / SHARPNESS_FLOOR).log10() / span).clamp(0.0, 100.0)
}

fn midpoint(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)
}

fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template, optionally rotated in the picture by `degrees` about its centre.
    fn template_rotated(degrees: f64) -> [[f32; 2]; 5] {
        let (sin, cos) = degrees.to_radians().sin_cos();
        ARCFACE_TEMPLATE.map(|[x, y]| {
            let (dx, dy) = (f64::from(x) - 56.0, f64::from(y) - 72.0);
            [
                (56.0 + dx * cos - dy * sin) as f32,
                (72.0 + dx * sin + dy * cos) as f32,
            ]
        })
    }

    #[test]
    fn frontal_template_has_no_pose() {
        let p = pose(&ARCFACE_TEMPLATE);
        assert!(
            p.roll.abs() < 0.5 && p.yaw.abs() < 1.0 && p.pitch.abs() < 0.1,
            "{p:?}"
        );
    }

    #[test]
    fn roll_follows_the_eye_line_and_leaves_yaw_and_pitch_alone() {
        for degrees in [-40.0, -10.0, 15.0, 60.0] {
            let p = pose(&template_rotated(degrees));
            // The template's eyes are already 0.3 degrees off level.
            assert!(
                (f64::from(p.roll) - degrees).abs() < 0.5,
                "{degrees}: {p:?}"
            );
            assert!(p.yaw.abs() < 1.0 && p.pitch.abs() < 0.1, "{degrees}: {p:?}");
        }
    }

    #[test]
    fn nose_to_the_side_is_yaw_with_its_sign() {
        // Nose moved right by 0.45 eye distances x tan(30 degrees): yaw 30.
        let eyes = 73.5318 - 38.2946;
        let mut landmarks = ARCFACE_TEMPLATE;
        landmarks[2][0] += (NOSE_DEPTH * eyes * 30f64.to_radians().tan()) as f32;
        let p = pose(&landmarks);
        assert!((p.yaw - 30.0).abs() < 1.0, "{p:?}");
        landmarks[2][0] = ARCFACE_TEMPLATE[2][0] - 10.0;
        assert!(pose(&landmarks).yaw < -20.0);
    }

    #[test]
    fn nose_towards_the_eyes_is_looking_up() {
        let mut landmarks = ARCFACE_TEMPLATE;
        landmarks[2][1] -= 8.0;
        let up = pose(&landmarks);
        landmarks[2][1] += 16.0;
        let down = pose(&landmarks);
        assert!(up.pitch > 15.0 && down.pitch < -15.0, "{up:?} {down:?}");
    }

    #[test]
    fn collapsed_landmarks_do_not_produce_nan() {
        let p = pose(&[[5.0, 5.0]; 5]);
        assert!(
            p.roll.is_finite() && p.yaw == 0.0 && p.pitch == 0.0,
            "{p:?}"
        );
    }

    fn crop(f: impl Fn(usize, usize) -> u8) -> AlignedFace {
        let mut pixels = Vec::new();
        for y in 0..ALIGNED_SIDE {
            for x in 0..ALIGNED_SIDE {
                pixels.extend([f(x, y); 3]);
            }
        }
        AlignedFace { pixels }
    }

    #[test]
    fn flat_crops_have_their_brightness_and_no_sharpness() {
        let black = quality(&crop(|_, _| 0));
        let white = quality(&crop(|_, _| 255));
        let grey = quality(&crop(|_, _| 51));
        assert_eq!((black.brightness, black.sharpness), (0.0, 0.0));
        assert!((white.brightness - 100.0).abs() < 1e-3 && white.sharpness == 0.0);
        assert!((grey.brightness - 20.0).abs() < 1e-3);
    }

    #[test]
    fn sharpness_scale_points() {
        for (variance, expected) in [
            (0.0, 0.0),
            (10.0, 0.0),
            (100.0, 33.3),
            (1000.0, 66.7),
            (1e4, 100.0),
            (1e6, 100.0),
        ] {
            let got = sharpness_from_variance(variance);
            assert!((got - expected).abs() < 0.1, "{variance}: {got}");
        }
    }

    #[test]
    fn edges_are_sharper_than_gradients() {
        let checker = quality(&crop(|x, y| if (x / 4 + y / 4) % 2 == 0 { 0 } else { 255 }));
        let ramp = quality(&crop(|x, _| (x * 2) as u8));
        assert!(checker.sharpness > 90.0, "{checker:?}");
        assert!(ramp.sharpness < 1.0, "{ramp:?}");
    }
}
