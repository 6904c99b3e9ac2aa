//! Face detection with YuNet (2023mar), decoded exactly like OpenCV's `FaceDetectorYN`.
//!
//! The model takes one fixed 640x640 BGR image (0-255 floats, planar). Any photo is
//! letterboxed into it: scaled by one factor so its longer side fits, placed top-left and
//! padded with black bottom and right (OpenCV pads bottom/right too). For each of three
//! strides (8, 16, 32) the model scores every grid cell (`cls` and `obj`, combined as
//! `sqrt(cls * obj)`) and regresses a box and five landmarks relative to the cell. Cells scoring
//! at least [`SCORE_THRESHOLD`] become candidates; non-maximum suppression keeps the best of
//! each overlapping group. Coordinates are then mapped back to the original photo's pixels.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

/// The detector's fixed input width and height.
pub const INPUT_SIDE: usize = 640;
/// Candidates scoring below this are dropped: the score that reads confidence 50 on
/// Rekognition's scale (`measure::SCORE_AT_50`), so DetectFaces reports doubtful faces with a
/// low confidence instead of hiding them. (OpenCV's default, 0.9, now reads 99: it hid every
/// face below that, and a real face scoring 0.89 on one re-encode vanished.)
pub const SCORE_THRESHOLD: f32 = 0.8;
/// OpenCV `FaceDetectorYN`'s default overlap above which the weaker of two boxes is dropped.
pub const NMS_THRESHOLD: f32 = 0.3;
/// OpenCV `FaceDetectorYN`'s default cap on candidates considered by NMS.
pub const TOP_K: usize = 5000;
const STRIDES: [usize; 3] = [8, 16, 32];

/// One face as the detector sees it, in pixels of whichever image it is expressed in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Left, top, width, height.
    pub bbox: [f32; 4],
    /// Five points: the eye on the image's left, the other eye, the nose tip, the mouth corner
    /// on the image's left, the other mouth corner.
    pub landmarks: [[f32; 2]; 5],
    /// sqrt(cls * obj), 0-1.
    pub score: f32,
}

impl Detection {
    pub fn area(&self) -> f32 {
        self.bbox[2].max(0.0) * self.bbox[3].max(0.0)
    }

    /// Intersection over union of the two boxes (0 when either is empty).
    pub fn iou(&self, other: &Detection) -> f32 {
        let [ax, ay, aw, ah] = self.bbox;
        let [bx, by, bw, bh] = other.bbox;
        let overlap_w = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
        let overlap_h = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
        let intersection = overlap_w * overlap_h;
        let union = self.area() + other.area() - intersection;
        if union > 0.0 {
            intersection / union
        } else {
            0.0
        }
    }

    /// The same detection with every coordinate multiplied by (sx, sy).
    fn scaled(&self, sx: f32, sy: f32) -> Detection {
        let [x, y, w, h] = self.bbox;
        Detection {
            bbox: [x * sx, y * sy, w * sx, h * sy],
            landmarks: self.landmarks.map(|[px, py]| [px * sx, py * sy]),
            score: self.score,
        }
    }
}

/// How a photo was fitted into the detector's square input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Size of the scaled photo inside the 640x640 input (the rest is padding).
    pub scaled_width: usize,
    pub scaled_height: usize,
    /// Original pixels per input pixel, per axis (the rounding of the scaled size makes them
    /// differ very slightly).
    pub to_original_x: f32,
    pub to_original_y: f32,
}

impl Letterbox {
    /// Fit a `width` x `height` photo into the input, keeping its aspect ratio.
    pub fn fit(width: u32, height: u32) -> Letterbox {
        let side = INPUT_SIDE as f64;
        let scale = (side / f64::from(width)).min(side / f64::from(height));
        let scaled = |n: u32| ((f64::from(n) * scale).round() as usize).clamp(1, INPUT_SIDE);
        let (scaled_width, scaled_height) = (scaled(width), scaled(height));
        Letterbox {
            scaled_width,
            scaled_height,
            to_original_x: width as f32 / scaled_width as f32,
            to_original_y: height as f32 / scaled_height as f32,
        }
    }

    /// A detection in input pixels, expressed in the original photo's pixels.
    pub fn to_original(&self, detection: &Detection) -> Detection {
        detection.scaled(self.to_original_x, self.to_original_y)
    }
}

/// One bilinear tap along an axis: `out = src[i0] * (1 - w) + src[i1] * w`.
#[derive(Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w: f32,
}

/// Sample positions of OpenCV's `INTER_LINEAR` resize from `src` to `dst` pixels along one axis:
/// pixel centres aligned, edges clamped.
fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let ratio = src as f32 / dst as f32;
    (0..dst)
        .map(|d| {
            let position = (d as f32 + 0.5) * ratio - 0.5;
            let floor = position.floor();
            if floor < 0.0 {
                Tap {
                    i0: 0,
                    i1: 0,
                    w: 0.0,
                }
            } else if floor as usize >= src - 1 {
                Tap {
                    i0: src - 1,
                    i1: src - 1,
                    w: 0.0,
                }
            } else {
                Tap {
                    i0: floor as usize,
                    i1: floor as usize + 1,
                    w: position - floor,
                }
            }
        })
        .collect()
}

/// Build the detector's input: the photo resized (bilinear) into the top-left of a black
/// 640x640 canvas, as planar B, G, R floats in 0-255.
pub fn letterbox(image: &RgbImage) -> (Vec<f32>, Letterbox) {
    let (width, height) = image.dimensions();
    let fit = Letterbox::fit(width, height);
    let plane = INPUT_SIDE * INPUT_SIDE;
    let mut tensor = vec![0.0f32; 3 * plane];
    let columns = taps(width as usize, fit.scaled_width);
    let rows = taps(height as usize, fit.scaled_height);
    let raw = image.as_raw();
    let stride = width as usize * 3;
    for (y, row) in rows.iter().enumerate() {
        let top = &raw[row.i0 * stride..(row.i0 + 1) * stride];
        let bottom = &raw[row.i1 * stride..(row.i1 + 1) * stride];
        for (x, column) in columns.iter().enumerate() {
            for channel in 0..3 {
                let at = |line: &[u8], i: usize| f32::from(line[i * 3 + channel]);
                let upper =
                    at(top, column.i0) + (at(top, column.i1) - at(top, column.i0)) * column.w;
                let lower = at(bottom, column.i0)
                    + (at(bottom, column.i1) - at(bottom, column.i0)) * column.w;
                // OpenCV resizes into 8-bit pixels before building the blob: round the same way.
                let value = (upper + (lower - upper) * row.w).round();
                // Planes are B, G, R: RGB channel 2 goes to plane 0.
                tensor[(2 - channel) * plane + y * INPUT_SIDE + x] = value;
            }
        }
    }
    (tensor, fit)
}

/// The raw outputs of one stride: per grid cell, 1 cls, 1 obj, 4 bbox and 10 kps values.
pub struct StrideOutput<'a> {
    pub stride: usize,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Turn the grid predictions of one stride into candidate detections (input pixels), as
/// OpenCV's `FaceDetectorYN::postProcess` does.
pub fn decode_stride(output: &StrideOutput<'_>, candidates: &mut Vec<Detection>) {
    let cols = INPUT_SIDE / output.stride;
    let cells = cols * cols;
    let stride = output.stride as f32;
    for index in 0..cells {
        let (Some(&cls), Some(&obj)) = (output.cls.get(index), output.obj.get(index)) else {
            break;
        };
        let score = (cls.clamp(0.0, 1.0) * obj.clamp(0.0, 1.0)).sqrt();
        if score < SCORE_THRESHOLD {
            continue;
        }
        let (Some(b), Some(k)) = (
            output.bbox.get(index * 4..index * 4 + 4),
            output.kps.get(index * 10..index * 10 + 10),
        ) else {
            break;
        };
        let (col, row) = ((index % cols) as f32, (index / cols) as f32);
        let centre_x = (col + b[0]) * stride;
        let centre_y = (row + b[1]) * stride;
        let w = b[2].exp() * stride;
        let h = b[3].exp() * stride;
        let mut landmarks = [[0.0; 2]; 5];
        for (n, point) in landmarks.iter_mut().enumerate() {
            *point = [(k[2 * n] + col) * stride, (k[2 * n + 1] + row) * stride];
        }
        candidates.push(Detection {
            bbox: [centre_x - w / 2.0, centre_y - h / 2.0, w, h],
            landmarks,
            score,
        });
    }
}

/// Greedy non-maximum suppression (OpenCV's `NMSBoxes`): best score first, drop any box that
/// overlaps an already kept one by more than `iou_threshold`; consider at most `top_k`.
pub fn non_max_suppression(
    mut candidates: Vec<Detection>,
    iou_threshold: f32,
    top_k: usize,
) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(top_k);
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept.iter().all(|k| k.iou(&candidate) <= iou_threshold) {
            kept.push(candidate);
        }
    }
    kept
}

/// Why detection failed: always the runtime, never the photo.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("running YuNet: {0}")]
    Run(#[from] ort::Error),
    #[error("YuNet output {0} is missing")]
    MissingOutput(String),
}

/// Detect every face in `image`; coordinates in the image's pixels, best score first.
pub fn detect(session: &mut Session, image: &RgbImage) -> Result<Vec<Detection>, DetectError> {
    let (input, fit) = letterbox(image);
    let tensor = TensorRef::from_array_view(([1usize, 3, INPUT_SIDE, INPUT_SIDE], &input[..]))?;
    let outputs = session.run(ort::inputs![tensor])?;
    let mut candidates = Vec::new();
    for stride in STRIDES {
        let get = |head: &str| -> Result<&[f32], DetectError> {
            let name = format!("{head}_{stride}");
            let value = outputs
                .get(&name)
                .ok_or_else(|| DetectError::MissingOutput(name.clone()))?;
            Ok(value.try_extract_tensor::<f32>()?.1)
        };
        let output = StrideOutput {
            stride,
            cls: get("cls")?,
            obj: get("obj")?,
            bbox: get("bbox")?,
            kps: get("kps")?,
        };
        decode_stride(&output, &mut candidates);
    }
    Ok(non_max_suppression(candidates, NMS_THRESHOLD, TOP_K)
        .iter()
        .map(|detection| fit.to_original(detection))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection {
            bbox: [x, y, w, h],
            landmarks: [[0.0; 2]; 5],
            score,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = boxed(0.0, 0.0, 10.0, 10.0, 1.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&boxed(20.0, 0.0, 10.0, 10.0, 1.0)), 0.0);
        // Half of a overlaps b: 50 / (100 + 100 - 50).
        let b = boxed(5.0, 0.0, 10.0, 10.0, 1.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&boxed(0.0, 0.0, 0.0, 0.0, 1.0)), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one() {
        let kept = non_max_suppression(
            vec![
                boxed(0.0, 0.0, 10.0, 10.0, 0.91),
                boxed(1.0, 1.0, 10.0, 10.0, 0.97), // overlaps the first by 0.68
                boxed(100.0, 0.0, 10.0, 10.0, 0.95),
                boxed(5.0, 0.0, 10.0, 10.0, 0.93), // overlaps the best by 0.38 > 0.3
            ],
            NMS_THRESHOLD,
            TOP_K,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.97, 0.95]);
    }

    #[test]
    fn nms_honours_top_k() {
        let far_apart = (0..10)
            .map(|i| boxed(i as f32 * 100.0, 0.0, 10.0, 10.0, 0.9 + i as f32 / 100.0))
            .collect();
        assert_eq!(non_max_suppression(far_apart, NMS_THRESHOLD, 3).len(), 3);
    }

    #[test]
    fn letterbox_fits_the_longer_side_and_maps_back() {
        let landscape = Letterbox::fit(1920, 1080);
        assert_eq!(
            (landscape.scaled_width, landscape.scaled_height),
            (640, 360)
        );
        assert_eq!(landscape.to_original_x, 3.0);
        assert_eq!(landscape.to_original_y, 3.0);
        let portrait = Letterbox::fit(300, 600);
        assert_eq!((portrait.scaled_width, portrait.scaled_height), (320, 640));
        // A point at input pixel (100, 200) is at (93.75, 187.5) in the 300x600 photo.
        let detection = boxed(100.0, 200.0, 32.0, 64.0, 0.95);
        assert_eq!(
            portrait.to_original(&detection).bbox,
            [93.75, 187.5, 30.0, 60.0]
        );
    }

    #[test]
    fn letterbox_pads_with_black_and_swaps_to_bgr() {
        let image = RgbImage::from_pixel(64, 32, image::Rgb([10, 20, 30]));
        let (tensor, fit) = letterbox(&image);
        assert_eq!((fit.scaled_width, fit.scaled_height), (640, 320));
        let plane = INPUT_SIDE * INPUT_SIDE;
        let at = |p: usize, x: usize, y: usize| tensor[p * plane + y * INPUT_SIDE + x];
        assert_eq!((at(0, 5, 5), at(1, 5, 5), at(2, 5, 5)), (30.0, 20.0, 10.0));
        assert_eq!((at(0, 639, 319), at(2, 639, 319)), (30.0, 10.0));
        assert_eq!((at(0, 5, 320), at(1, 600, 639)), (0.0, 0.0));
    }

    #[test]
    fn letterbox_interpolates_like_opencv() {
        // A 2-pixel-wide ramp scaled to 4 pixels: OpenCV's INTER_LINEAR gives 0, 64, 191, 255.
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(1, 0, image::Rgb([255, 255, 255]));
        let columns = taps(2, 4);
        let values: Vec<f32> = columns
            .iter()
            .map(|t| (255.0 * (t.i0 as f32 * (1.0 - t.w) + t.i1 as f32 * t.w)).round())
            .collect();
        assert_eq!(values, vec![0.0, 64.0, 191.0, 255.0]);
    }

    #[test]
    fn decodes_one_confident_cell() {
        // Stride 32: a 20x20 grid. Cell (col 3, row 2) is confident; every other cell is not.
        let cells = 400;
        let mut cls = vec![0.0; cells];
        let mut obj = vec![0.0; cells];
        let mut bbox = vec![0.0; cells * 4];
        let mut kps = vec![0.0; cells * 10];
        let index = 2 * 20 + 3;
        cls[index] = 1.2; // clamped to 1
        obj[index] = 0.81;
        bbox[index * 4..index * 4 + 4].copy_from_slice(&[0.5, 0.25, 0.0, 1.0f32.ln()]);
        kps[index * 10..index * 10 + 2].copy_from_slice(&[0.25, 0.5]);
        let mut found = Vec::new();
        decode_stride(
            &StrideOutput {
                stride: 32,
                cls: &cls,
                obj: &obj,
                bbox: &bbox,
                kps: &kps,
            },
            &mut found,
        );
        assert_eq!(found.len(), 1);
        let face = found[0];
        assert!((face.score - 0.9).abs() < 1e-6);
        // Centre (3.5 * 32, 2.25 * 32) = (112, 72), size 32x32.
        assert_eq!(face.bbox, [96.0, 56.0, 32.0, 32.0]);
        assert_eq!(face.landmarks[0], [104.0, 80.0]);
    }
}
