//! Measures Rekognition reports per face that the models do not give directly: head pose
//! fitted to the five landmarks, a confidence on Rekognition's scale, and image quality of the
//! aligned face.
//!
//! # Pose (degrees): a mean 3D head fitted to the landmarks
//! [`fit_head`] finds the rotation and position of [`HEAD_MODEL`] (five 3D points of an
//! average head) whose pinhole projection through [`camera`] best matches the five landmarks:
//! a perspective-n-point fit, solved by Levenberg-Marquardt like OpenCV's `solvePnP`. The
//! rotation is reported relative to the line of sight to the head (a face looking into the
//! lens from a corner of the picture is frontal), in the angles of [`rotation`]: yaw positive when the nose turns to the image's right, pitch positive
//! when the face looks up, roll positive when the face turns clockwise in the picture. Because
//! the model and the camera are left-right symmetric, the fit of a mirrored set of landmarks is
//! exactly the mirrored fit (yaw and roll negated, pitch kept).
//!
//! YuNet's landmarks themselves are not mirror-symmetric (on the fixture photos, one run on a
//! photo and one on its mirror disagree by up to 16 px at a 150 px eye distance, ~10 degrees of
//! yaw), so the pipeline detects on the photo *and* its mirror and averages the two
//! ([`symmetrize`]): then mirroring the photo only swaps the two runs, and pose, box, landmarks
//! and confidence all mirror. Measured error: engine/CALIBRATION.md.
//!
//! # Confidence (0-100)
//! [`confidence`] maps YuNet's score (`sqrt(cls · obj)`, 0-1, which saturates near 0.95) onto
//! Rekognition's scale with a logistic curve through two measured anchors; see its constants.
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

use super::align::{ALIGNED_SIDE, AlignedFace};
use super::detect::Detection;
use super::{Pose, Quality};

/// Height of the nose tip above the plane of the eyes and mouth, as a fraction of the distance
/// between the eyes (generic adult head: ~30 mm against ~65 mm).
pub const NOSE_DEPTH: f64 = 0.45;

/// Where the nose tip sits between the eye line (0) and the mouth line (1) in a frontal face:
/// [`HEAD_MODEL`]'s value (the closed-form starting estimate uses it).
pub const FRONTAL_NOSE_HEIGHT: f64 = HEAD_MODEL[2][1] / HEAD_MODEL[3][1];

/// Laplacian variance at which sharpness starts above 0.
pub const SHARPNESS_FLOOR: f64 = 10.0;
/// Laplacian variance at which sharpness reaches 100.
pub const SHARPNESS_FULL: f64 = 10_000.0;

/// The mean head: where the five landmarks sit on an average adult head, in units of the
/// distance between the eyes, in the head's own frame: x to the image's right, y down, z away
/// from the camera, so a frontal head (yaw = pitch = roll = 0) faces the camera along -z.
///
/// x and y are where YuNet itself puts the landmarks on a frontal face: the mean of the
/// near-frontal fixture portraits (nose within 0.05 eye distances of the midline; 7 photos),
/// eyes levelled and 1 apart, with the nose then raised from 0.545 to 0.51 so that those
/// portraits read pitch 0 on average once perspective is accounted for, and made exactly
/// left-right symmetric so that the fit of a mirrored
/// face is exactly the mirror of the fit. (The ArcFace alignment template puts the mouth 1.155
/// eye distances below the eyes; YuNet puts it 0.96 below, and a model built on the template
/// read every frontal portrait as looking down by 17-32 degrees.) Depth: the nose tip
/// [`NOSE_DEPTH`] in front of the eyes, the mouth corners in the eyes' plane (a generic head;
/// see engine/CALIBRATION.md for what that costs).
pub const HEAD_MODEL: [[f64; 3]; 5] = [
    [-0.5, 0.0, 0.0],
    [0.5, 0.0, 0.0],
    [0.0, 0.51, -NOSE_DEPTH],
    [-0.454, 0.96, 0.0],
    [0.454, 0.96, 0.0],
];

/// The camera assumed for a photo `width` x `height`: focal length in pixels and principal
/// point. Photos carry no calibration; a focal length of the longer side (a ~53 degree field of
/// view across it, a phone's or webcam's) and the centre of the image are the usual guesses,
/// and the centre keeps the camera symmetric under mirroring.
pub fn camera(width: u32, height: u32) -> (f64, f64, f64) {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    (w.max(h), w / 2.0, h / 2.0)
}

/// The head model fitted to five landmarks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadFit {
    pub pose: Pose,
    /// Root-mean-square distance between the landmarks and the fitted model's projection, as
    /// a fraction of the distance between the eyes: how well a rigid average head explains them.
    pub rms_error: f64,
}

/// Head pose from the five landmarks (photo pixels, detector order) of a `width` x `height`
/// photo: the rotation of [`HEAD_MODEL`] whose perspective projection best matches them,
/// relative to the line of sight from the camera to the head.
pub fn pose(landmarks: &[[f32; 2]; 5], width: u32, height: u32) -> Pose {
    fit_head(landmarks, width, height).pose
}

/// Fit [`HEAD_MODEL`] to the landmarks: the perspective-n-point problem, solved by
/// Levenberg-Marquardt over the three angles and the head's position (what OpenCV's
/// `solvePnP(SOLVEPNP_ITERATIVE)` does), from the closed-form estimate and its three sign
/// flips (a five-point fit can have a second, mirrored minimum; the set of starts is itself
/// symmetric, so mirroring the face mirrors the chosen minimum too).
pub fn fit_head(landmarks: &[[f32; 2]; 5], width: u32, height: u32) -> HeadFit {
    let points = landmarks.map(|[x, y]| [f64::from(x), f64::from(y)]);
    let eyes = distance((points[0][0], points[0][1]), (points[1][0], points[1][1]));
    let rough = closed_form(landmarks);
    if eyes.is_nan() || eyes <= f64::EPSILON || points.iter().flatten().any(|v| !v.is_finite()) {
        return HeadFit {
            pose: rough,
            rms_error: f64::INFINITY,
        };
    }
    let camera = camera(width, height);
    let (focal, cx, cy) = camera;
    // Distance at which a model eye distance of 1 spans `eyes` pixels, and the head's centre
    // on the line of sight through the landmarks' centroid.
    let tz = focal / eyes;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p[0] / 5.0, y + p[1] / 5.0));
    let (tx, ty) = ((mx - cx) * tz / focal, (my - cy) * tz / focal);
    let roll = f64::from(rough.roll).to_radians();
    let (yaw, pitch) = (
        f64::from(rough.yaw).to_radians(),
        f64::from(rough.pitch).to_radians(),
    );
    let mut best: Option<([f64; 6], f64)> = None;
    for (sy, sp) in [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (-1.0, -1.0)] {
        let start = [sy * yaw, sp * pitch, roll, tx, ty, tz];
        let (params, cost) = levenberg_marquardt(start, &points, camera);
        if best.is_none_or(|(_, c)| cost < c - 1e-12) {
            best = Some((params, cost));
        }
    }
    let Some((params, cost)) = best else {
        unreachable!("four starts")
    };
    let [yaw, pitch, roll, tx, ty, tz] = params;
    // Report the head's turn relative to the line of sight, not to the optical axis: a head
    // facing the lens from a corner of the picture is frontal to a person, and its rotation
    // about the camera's axes is just the direction it is seen in.
    let relative = multiply(
        &transpose(&towards_camera([tx, ty, tz])),
        &rotation(yaw, pitch, roll),
    );
    let (yaw, pitch, roll) = angles(&relative);
    HeadFit {
        pose: Pose {
            roll: wrap_degrees(roll.to_degrees()) as f32,
            yaw: wrap_degrees(yaw.to_degrees()) as f32,
            pitch: wrap_degrees(pitch.to_degrees()) as f32,
        },
        rms_error: (cost / 5.0).sqrt() / eyes,
    }
}

/// An angle in degrees folded into (-180, 180].
fn wrap_degrees(degrees: f64) -> f64 {
    let folded = (degrees + 180.0).rem_euclid(360.0) - 180.0;
    if folded == -180.0 { 180.0 } else { folded }
}

/// The rotation taking the head frame to the camera frame for (yaw, pitch, roll), in
/// radians: `Rz(roll) · Ry(-yaw) · Rx(-pitch)`. The signs make yaw positive when the nose turns
/// to the image's right, pitch positive when the face looks up (nose towards the eyes) and
/// roll positive when the face turns clockwise in the picture; mirroring the image (x -> -x)
/// then negates yaw and roll and keeps pitch, as `M · R · M` does to these three factors.
pub fn rotation(yaw: f64, pitch: f64, roll: f64) -> [[f64; 3]; 3] {
    let (sy, cy) = (-yaw).sin_cos();
    let (sp, cp) = (-pitch).sin_cos();
    let (sr, cr) = roll.sin_cos();
    let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
    multiply(&multiply(&rz, &ry), &rx)
}

/// (yaw, pitch, roll) in radians of a rotation built as [`rotation`] builds it.
pub fn angles(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    let yaw = r[2][0].clamp(-1.0, 1.0).asin();
    let pitch = -r[2][1].atan2(r[2][2]);
    let roll = r[1][0].atan2(r[0][0]);
    (yaw, pitch, roll)
}

/// The smallest rotation taking the optical axis (0, 0, 1) onto the direction of `t`.
pub fn towards_camera(t: [f64; 3]) -> [[f64; 3]; 3] {
    let norm = (t[0] * t[0] + t[1] * t[1] + t[2] * t[2]).sqrt();
    // Axis z x t = (-ty, tx, 0); its length is the sine of the angle.
    let (kx, ky) = (-t[1] / norm, t[0] / norm);
    let sin = kx.hypot(ky);
    if sin.is_nan() || sin <= 1e-12 {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let cos = t[2] / norm;
    let (kx, ky) = (kx / sin, ky / sin);
    // Rodrigues: I + sin K + (1 - cos) K^2, K the cross-product matrix of the unit axis.
    let k = [[0.0, 0.0, ky], [0.0, 0.0, -kx], [-ky, kx, 0.0]];
    let k2 = multiply(&k, &k);
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let identity = if i == j { 1.0 } else { 0.0 };
            identity + sin * k[i][j] + (1.0 - cos) * k2[i][j]
        })
    })
}

fn transpose(r: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| r[j][i]))
}

fn multiply(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Where the model's landmarks land in the photo for `params` = (yaw, pitch, roll, tx, ty, tz).
pub fn project(params: &[f64; 6], (focal, cx, cy): (f64, f64, f64)) -> [[f64; 2]; 5] {
    let r = rotation(params[0], params[1], params[2]);
    HEAD_MODEL.map(|p| {
        let c: [f64; 3] = std::array::from_fn(|i| {
            r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2] + params[3 + i]
        });
        // A point behind the camera cannot be seen: keep the projection finite and far away.
        let z = c[2].max(1e-6);
        [focal * c[0] / z + cx, focal * c[1] / z + cy]
    })
}

fn residuals(params: &[f64; 6], points: &[[f64; 2]; 5], camera: (f64, f64, f64)) -> [f64; 10] {
    let projected = project(params, camera);
    std::array::from_fn(|i| projected[i / 2][i % 2] - points[i / 2][i % 2])
}

fn cost(r: &[f64; 10]) -> f64 {
    r.iter().map(|v| v * v).sum()
}

/// Minimise the squared reprojection error from `start`; returns the parameters and the cost.
fn levenberg_marquardt(
    start: [f64; 6],
    points: &[[f64; 2]; 5],
    camera: (f64, f64, f64),
) -> ([f64; 6], f64) {
    let mut params = start;
    let mut r = residuals(&params, points, camera);
    let mut current = cost(&r);
    let mut lambda = 1e-3;
    for _ in 0..200 {
        // Central differences: the model is smooth and tiny, so an analytic Jacobian buys
        // nothing but room for sign mistakes.
        // columns[j][i]: d residual i / d parameter j.
        let columns: [[f64; 10]; 6] = std::array::from_fn(|j| {
            let step = 1e-6 * params[j].abs().max(1.0);
            let (mut plus, mut minus) = (params, params);
            plus[j] += step;
            minus[j] -= step;
            let (rp, rm) = (
                residuals(&plus, points, camera),
                residuals(&minus, points, camera),
            );
            std::array::from_fn(|i| (rp[i] - rm[i]) / (2.0 * step))
        });
        let dot = |a: &[f64; 10], b: &[f64; 10]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let normal: [[f64; 6]; 6] =
            std::array::from_fn(|a| std::array::from_fn(|b| dot(&columns[a], &columns[b])));
        let gradient: [f64; 6] = std::array::from_fn(|a| dot(&columns[a], &r));
        let mut improved = false;
        while lambda < 1e12 {
            let mut damped = normal;
            for (a, row) in damped.iter_mut().enumerate() {
                row[a] += lambda * normal[a][a].max(1e-12);
            }
            let Some(delta) = solve6(damped, gradient.map(|g| -g)) else {
                lambda *= 10.0;
                continue;
            };
            let candidate: [f64; 6] = std::array::from_fn(|j| params[j] + delta[j]);
            let rc = residuals(&candidate, points, camera);
            let c = cost(&rc);
            if c.is_finite() && c < current {
                let shrink = current - c;
                params = candidate;
                r = rc;
                current = c;
                lambda = (lambda / 10.0).max(1e-12);
                improved = shrink > 1e-14 * current.max(1e-300);
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (params, current)
}

/// Solve the 6x6 system `a · x = b` by Gaussian elimination with partial pivoting.
fn solve6(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> Option<[f64; 6]> {
    for col in 0..6 {
        let pivot = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..6 {
            let factor = a[row][col] / a[col][col];
            let (above, below) = a.split_at_mut(row);
            for (x, p) in below[0][col..].iter_mut().zip(&above[col][col..]) {
                *x -= factor * p;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; 6];
    for row in (0..6).rev() {
        let tail: f64 = (row + 1..6).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The closed-form estimate the fit starts from: roll from the eye line; with the eyes
/// levelled, yaw from the nose tip's sideways offset from the face's midline and pitch from its
/// height between the eye and mouth lines, both against [`NOSE_DEPTH`] (a weak-perspective
/// reading of the same head model).
fn closed_form(landmarks: &[[f32; 2]; 5]) -> Pose {
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

/// Detections of one run and of the mirror run that must overlap this much (intersection over
/// union, once mirrored back) to be the same face.
pub const SAME_FACE_IOU: f32 = 0.5;

/// A detection made on the mirrored photo, expressed in the photo's own pixels: x flipped
/// about the photo's `width`, and the left/right landmarks swapped back into detector order
/// (the mirror's image-left eye is the photo's image-right eye).
pub fn unmirror(detection: &Detection, width: f32) -> Detection {
    let [x, y, w, h] = detection.bbox;
    let l = detection.landmarks.map(|[px, py]| [width - px, py]);
    Detection {
        bbox: [width - x - w, y, w, h],
        landmarks: [l[1], l[0], l[2], l[4], l[3]],
        score: detection.score,
    }
}

/// Merge the detections of a photo (`original`) with those of its mirror image (`mirrored`,
/// in the mirror's pixels; `width` is the photo's width): each face found by both runs becomes
/// the average of the two (box, landmarks and score), so a mirrored photo, whose two runs are
/// the same two swapped, gets exactly the mirrored answer. Pairs are taken by overlap, best
/// first. A face only one run found is dropped: averaged with the run that missed it (a score
/// below the detector's threshold there), it could not reach the threshold, and keeping it
/// would make the answer depend on which way round the photo is. Best score first.
pub fn symmetrize(original: &[Detection], mirrored: &[Detection], width: f32) -> Vec<Detection> {
    let back: Vec<Detection> = mirrored.iter().map(|d| unmirror(d, width)).collect();
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, a) in original.iter().enumerate() {
        for (j, b) in back.iter().enumerate() {
            let overlap = a.iou(b);
            if overlap >= SAME_FACE_IOU {
                pairs.push((overlap, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_a, mut used_b) = (vec![false; original.len()], vec![false; back.len()]);
    let mut merged = Vec::with_capacity(original.len().max(back.len()));
    for (_, i, j) in pairs {
        if used_a[i] || used_b[j] {
            continue;
        }
        used_a[i] = true;
        used_b[j] = true;
        let (a, b) = (&original[i], &back[j]);
        let mean = |p: f32, q: f32| (p + q) / 2.0;
        merged.push(Detection {
            bbox: std::array::from_fn(|k| mean(a.bbox[k], b.bbox[k])),
            landmarks: std::array::from_fn(|k| {
                [
                    mean(a.landmarks[k][0], b.landmarks[k][0]),
                    mean(a.landmarks[k][1], b.landmarks[k][1]),
                ]
            }),
            score: mean(a.score, b.score),
        });
    }
    merged.sort_by(|a, b| b.score.total_cmp(&a.score));
    merged
}

/// YuNet score that reads as confidence 99 (see [`confidence`]).
pub const SCORE_AT_99: f64 = 0.90;
/// YuNet score that reads as confidence 50.
pub const SCORE_AT_50: f64 = 0.80;

/// A detection's confidence on Rekognition's 0-100 scale, from YuNet's 0-1 score: the logistic
/// curve through ([`SCORE_AT_50`], 50) and ([`SCORE_AT_99`], 99). YuNet's score saturates near
/// 0.95 for any clear face, where Rekognition reports 99.9; read linearly (x 100) every clear
/// face sat at 90-95, on the gate's threshold of 90. Strictly increasing, so a confidence
/// threshold is a score threshold ([`score_for_confidence`]). Measured: engine/CALIBRATION.md.
pub fn confidence(score: f32) -> f32 {
    let steepness = 99f64.ln() / (SCORE_AT_99 - SCORE_AT_50);
    let c = 100.0 / (1.0 + (-steepness * (f64::from(score) - SCORE_AT_50)).exp());
    c.clamp(0.0, 100.0) as f32
}

/// The YuNet score at which [`confidence`] reads `confidence` (0 < confidence < 100).
pub fn score_for_confidence(confidence: f64) -> f64 {
    let steepness = 99f64.ln() / (SCORE_AT_99 - SCORE_AT_50);
    SCORE_AT_50 + (confidence / (100.0 - confidence)).ln() / steepness
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

    const W: u32 = 640;
    const H: u32 = 480;

    /// The model's landmarks as a camera sees a head at (yaw, pitch, roll) degrees, 8 eye
    /// distances away, off the image's centre.
    fn seen(yaw: f64, pitch: f64, roll: f64) -> [[f32; 2]; 5] {
        let t = [0.7, -0.4, 8.0];
        // The pose is relative to the line of sight: turn it onto the ray to the head.
        let absolute = multiply(
            &towards_camera(t),
            &rotation(yaw.to_radians(), pitch.to_radians(), roll.to_radians()),
        );
        let (a, b, c) = angles(&absolute);
        let params = [a, b, c, t[0], t[1], t[2]];
        project(&params, camera(W, H)).map(|[x, y]| [x as f32, y as f32])
    }

    fn mirrored(landmarks: &[[f32; 2]; 5], width: u32) -> [[f32; 2]; 5] {
        let l = landmarks.map(|[x, y]| [width as f32 - x, y]);
        [l[1], l[0], l[2], l[4], l[3]]
    }

    #[test]
    fn the_fit_recovers_the_pose_that_made_the_landmarks() {
        for (yaw, pitch, roll) in [
            (0.0, 0.0, 0.0),
            (30.0, 0.0, 0.0),
            (-45.0, 10.0, 5.0),
            (20.0, -25.0, -15.0),
            (-10.0, 30.0, 40.0),
            (60.0, 5.0, -30.0),
        ] {
            let fit = fit_head(&seen(yaw, pitch, roll), W, H);
            let p = fit.pose;
            assert!(
                (f64::from(p.yaw) - yaw).abs() < 0.05
                    && (f64::from(p.pitch) - pitch).abs() < 0.05
                    && (f64::from(p.roll) - roll).abs() < 0.05,
                "({yaw}, {pitch}, {roll}): {fit:?}"
            );
            assert!(fit.rms_error < 1e-4, "{fit:?}");
        }
    }

    #[test]
    fn mirrored_landmarks_negate_yaw_and_roll_and_keep_pitch() {
        for (yaw, pitch, roll) in [(25.0, 8.0, -6.0), (-38.0, -12.0, 11.0)] {
            // Perturbed so the fit is not exact: the symmetry must hold for real residuals.
            let mut landmarks = seen(yaw, pitch, roll);
            landmarks[2][0] += 3.0;
            landmarks[3][1] -= 2.0;
            let a = pose(&landmarks, W, H);
            let b = pose(&mirrored(&landmarks, W), W, H);
            assert!(
                (a.yaw + b.yaw).abs() < 1e-3
                    && (a.roll + b.roll).abs() < 1e-3
                    && (a.pitch - b.pitch).abs() < 1e-3,
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn signs_follow_the_nose_and_the_eye_line() {
        // Nose to the image's right: positive yaw; towards the eyes: looking up (positive
        // pitch); the right-hand eye lower: clockwise (positive roll).
        let mut landmarks = seen(0.0, 0.0, 0.0);
        landmarks[2][0] += 10.0;
        assert!(pose(&landmarks, W, H).yaw > 10.0);
        let mut landmarks = seen(0.0, 0.0, 0.0);
        landmarks[2][1] -= 10.0;
        assert!(pose(&landmarks, W, H).pitch > 10.0);
        let mut landmarks = seen(0.0, 0.0, 0.0);
        landmarks[1][1] += 10.0;
        assert!(pose(&landmarks, W, H).roll > 1.0);
    }

    #[test]
    fn collapsed_landmarks_do_not_produce_nan() {
        let p = pose(&[[5.0, 5.0]; 5], W, H);
        assert!(
            p.roll.is_finite() && p.yaw == 0.0 && p.pitch == 0.0,
            "{p:?}"
        );
        let nan = pose(&[[f32::NAN, 1.0]; 5], W, H);
        assert!(nan.yaw.is_finite() || nan.yaw.is_nan(), "no panic");
    }

    fn detection(x: f32, score: f32) -> Detection {
        Detection {
            bbox: [x, 10.0, 50.0, 60.0],
            landmarks: [
                [x + 15.0, 30.0],
                [x + 35.0, 31.0],
                [x + 27.0, 42.0],
                [x + 17.0, 55.0],
                [x + 33.0, 55.0],
            ],
            score,
        }
    }

    #[test]
    fn symmetrize_averages_both_runs_and_mirrors_exactly() {
        let width = 200.0;
        let photo = vec![detection(20.0, 0.94), detection(130.0, 0.80)];
        // The mirror run: the first face seen a little differently (2 px further left in the
        // mirror: 2 px further right once mirrored back), the second not at all.
        let mut seen_mirrored = unmirror(&detection(22.0, 0.92), width);
        seen_mirrored.landmarks[2][0] -= 2.0;
        let mirror = vec![seen_mirrored];
        let merged = symmetrize(&photo, &mirror, width);
        // The nose: 47 in this run, 49 + 2 in the other. The second face, which the mirror
        // run missed, is not reported.
        assert_eq!(merged.len(), 1, "{merged:?}");
        assert!((merged[0].score - 0.93).abs() < 1e-6, "{merged:?}");
        assert!((merged[0].bbox[0] - 21.0).abs() < 1e-4, "{merged:?}");
        assert!(
            (merged[0].landmarks[2][0] - 49.0).abs() < 1e-4,
            "{merged:?}"
        );
        // The mirrored photo's two runs are the same two, swapped: its answer is the mirror.
        let swapped = symmetrize(&mirror, &photo, width);
        for (a, b) in merged.iter().zip(&swapped) {
            let b = unmirror(b, width);
            for (p, q) in a.bbox.iter().zip(&b.bbox) {
                assert!((p - q).abs() < 1e-3, "{a:?} {b:?}");
            }
            for (p, q) in a.landmarks.iter().zip(&b.landmarks) {
                assert!((p[0] - q[0]).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3);
            }
            assert_eq!(a.score, b.score);
        }
    }

    #[test]
    fn the_detector_reports_faces_from_confidence_50() {
        assert!((f64::from(super::super::detect::SCORE_THRESHOLD) - SCORE_AT_50).abs() < 1e-6);
    }

    #[test]
    fn confidence_scale_points() {
        assert!((confidence(SCORE_AT_99 as f32) - 99.0).abs() < 0.01);
        assert!((confidence(SCORE_AT_50 as f32) - 50.0).abs() < 0.01);
        assert!(confidence(0.95) > 99.5);
        assert!(confidence(0.3) < 1.0);
        let mut last = -1.0;
        for i in 0..=100 {
            let c = confidence(i as f32 / 100.0);
            assert!(c >= last && (0.0..=100.0).contains(&c));
            last = c;
        }
        for c in [10.0, 50.0, 90.0, 99.0] {
            let back = confidence(score_for_confidence(c) as f32);
            assert!((f64::from(back) - c).abs() < 0.01, "{c}: {back}");
        }
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
