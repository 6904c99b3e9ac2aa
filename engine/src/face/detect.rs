//! Face detection with YuNet (2023mar), decoded exactly like OpenCV's `FaceDetectorYN`, at
//! input sizes chosen from each photo.
//!
//! YuNet is fully convolutional: it runs at any input whose sides are multiples of 32 (the
//! engine names those dimensions at load, see `model_edit`), and OpenCV sets the input to each
//! image's size. One fixed 640x640 letterbox, as the engine used to do, misses two kinds of
//! face: a face that fills a small photo is blown up past the detector's largest anchors (a
//! 112x112 ID crop gave no face), and small faces in a large photo shrink below its smallest
//! (a group photo lost two of six). So every photo is searched in up to three [`Pass`]es:
//!
//! 1. **letterbox**: the photo at the scale of the OpenCV reference's 640x640 letterbox
//!    ([`Pass::letterbox`]). Its faces are the reference's, to the landmark, so their
//!    embeddings are the ones the similarity calibration was measured on; it runs first and
//!    wins wherever another pass sees the same face.
//! 2. **fine**, only when the letterbox shrinks Rekognition's smallest face, 40x40 pixels in
//!    a 1920x1080 photo and proportionally more in larger ones ([`min_face_px`]), below
//!    [`MIN_FACE_INPUT_PX`] pixels (below that YuNet loses faces): the photo scaled (never
//!    up) so that face is that size. It reports only the faces too small for the letterbox
//!    ([`FINE_MAX_LETTERBOX_PX`]);
//! 3. **coarse**: the whole photo shrunk to [`COARSE_SIDE`] pixels and framed by a black border
//!    of [`COARSE_PAD`] of its side, where a face that fills the frame (a selfie taken too
//!    close, an ID-photo crop) looks like a face in a scene. It costs about a millisecond.
//!
//! Each pass places the scaled photo inside its padding (black, like OpenCV's bottom/right
//! padding) as planar B, G, R floats in 0-255. For each of three strides (8, 16, 32) the model
//! scores every grid cell (`cls` and `obj`, combined as `sqrt(cls * obj)`) and regresses a box
//! and five landmarks relative to the cell. Cells scoring at least [`SCORE_THRESHOLD`] become
//! candidates, expressed in the photo's pixels; non-maximum suppression keeps the best of each
//! overlapping group within a pass, and a later pass only adds faces no earlier pass found.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

/// Input sides must be multiples of the largest stride.
pub const INPUT_ALIGN: usize = 32;
/// The side of the square the OpenCV reference letterboxes every photo into (and the model
/// file declares as its input).
pub const LETTERBOX_SIDE: usize = 640;
/// Candidates scoring below this are dropped: the score that reads confidence 50 on
/// Rekognition's scale (`measure::SCORE_AT_50`), so DetectFaces reports doubtful faces with a
/// low confidence instead of hiding them. (OpenCV's default, 0.9, now reads 99: it hid every
/// face below that, and a real face scoring 0.89 on one re-encode vanished; it also missed
/// the 40-pixel faces of the recall tests.)
pub const SCORE_THRESHOLD: f32 = 0.8;
/// Rekognition's smallest face: 40x40 pixels in a 1920x1080 photo.
pub const MIN_FACE_PX: f32 = 40.0;
/// The size at which the fine pass shows the smallest face to YuNet. Measured on 40-pixel
/// faces in 1920x1080 frames: 20 loses half of them, 24 one in six, 26 none.
pub const MIN_FACE_INPUT_PX: f32 = 26.0;
/// The fine pass only reports faces the letterbox shows narrower than this (its pixels):
/// twice the size below which YuNet starts losing faces. A wider face is the letterbox's to
/// find, and one it did not find is doubtful: on a photo turned sideways the fine pass took
/// the sideways head for an upright face (score 0.82, landmarks made up) that the letterbox
/// rightly did not report.
pub const FINE_MAX_LETTERBOX_PX: f32 = 2.0 * MIN_FACE_INPUT_PX;
/// The longer side of the coarse pass (before its border).
pub const COARSE_SIDE: f32 = 160.0;
/// The coarse pass's border on each side, as a fraction of its longer side.
pub const COARSE_PAD: f32 = 0.25;
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
}

/// Rekognition's minimum face size for a `width` x `height` photo: 40 pixels up to 1920x1080,
/// proportionally more in larger photos.
pub fn min_face_px(width: u32, height: u32) -> f32 {
    let (long, short) = (width.max(height) as f32, width.min(height) as f32);
    MIN_FACE_PX * (long / 1920.0).max(short / 1080.0).max(1.0)
}

/// One run of the detector over a photo: the photo scaled into the input, inside a border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pass {
    /// Size of the scaled photo inside the input.
    pub scaled_width: usize,
    pub scaled_height: usize,
    /// Black border left and top (and at least as much right and bottom).
    pub pad: usize,
    /// The detector's input size: the scaled photo and its border, rounded up to
    /// [`INPUT_ALIGN`].
    pub input_width: usize,
    pub input_height: usize,
    /// Original pixels per input pixel, per axis (the rounding of the scaled size makes them
    /// differ very slightly).
    pub to_original_x: f32,
    pub to_original_y: f32,
    /// The widest face (photo pixels) this pass reports; wider ones are another pass's.
    pub max_face_width: f32,
}

impl Pass {
    /// A `width` x `height` photo scaled by `scale` (at most 1), with a border of `pad`.
    pub fn new(width: u32, height: u32, scale: f32, pad: usize) -> Pass {
        let scale = f64::from(scale.clamp(f32::MIN_POSITIVE, 1.0));
        let scaled =
            |n: u32| ((f64::from(n) * scale).round() as usize).clamp(1, (n as usize).max(1));
        let (scaled_width, scaled_height) = (scaled(width), scaled(height));
        let align = |n: usize| (n + 2 * pad).div_ceil(INPUT_ALIGN) * INPUT_ALIGN;
        Pass {
            scaled_width,
            scaled_height,
            pad,
            input_width: align(scaled_width),
            input_height: align(scaled_height),
            to_original_x: width as f32 / scaled_width as f32,
            to_original_y: height as f32 / scaled_height as f32,
            max_face_width: f32::INFINITY,
        }
    }

    /// The scale of the OpenCV reference's 640x640 letterbox (the longer side fitted to 640,
    /// small photos enlarged), rounded exactly as before: the faces of this pass are the
    /// reference's, landmarks and so embeddings included, which the similarity calibration
    /// was measured on. The input is the scaled photo rounded up to [`INPUT_ALIGN`] rather
    /// than padded to a square: the padding is black either way.
    pub fn letterbox(width: u32, height: u32) -> Pass {
        let side = LETTERBOX_SIDE as f64;
        let scale = (side / f64::from(width.max(1))).min(side / f64::from(height.max(1)));
        let scaled = |n: u32| ((f64::from(n) * scale).round() as usize).clamp(1, LETTERBOX_SIDE);
        let (scaled_width, scaled_height) = (scaled(width), scaled(height));
        let align = |n: usize| n.div_ceil(INPUT_ALIGN) * INPUT_ALIGN;
        Pass {
            scaled_width,
            scaled_height,
            pad: 0,
            input_width: align(scaled_width),
            input_height: align(scaled_height),
            to_original_x: width as f32 / scaled_width as f32,
            to_original_y: height as f32 / scaled_height as f32,
            max_face_width: f32::INFINITY,
        }
    }

    /// A detection in input pixels, expressed in the original photo's pixels.
    pub fn to_original(&self, detection: &Detection) -> Detection {
        let pad = self.pad as f32;
        let [x, y, w, h] = detection.bbox;
        let (sx, sy) = (self.to_original_x, self.to_original_y);
        Detection {
            bbox: [(x - pad) * sx, (y - pad) * sy, w * sx, h * sy],
            landmarks: detection
                .landmarks
                .map(|[px, py]| [(px - pad) * sx, (py - pad) * sy]),
            score: detection.score,
        }
    }
}

/// The passes that search a `width` x `height` photo, in the order their faces win over the
/// same face seen by a later pass: letterbox, fine (only where the letterbox would show the
/// smallest face below [`MIN_FACE_INPUT_PX`]), coarse.
pub fn passes(width: u32, height: u32) -> Vec<Pass> {
    let letterbox = Pass::letterbox(width, height);
    let mut passes = vec![letterbox];
    let min_face = min_face_px(width, height);
    if min_face / letterbox.to_original_x.max(letterbox.to_original_y) < MIN_FACE_INPUT_PX {
        let fine = (MIN_FACE_INPUT_PX / min_face).min(1.0);
        passes.push(Pass {
            max_face_width: FINE_MAX_LETTERBOX_PX * letterbox.to_original_x,
            ..Pass::new(width, height, fine, 0)
        });
    }
    let long = width.max(height) as f32;
    let coarse = (COARSE_SIDE / long).min(1.0);
    let pad = (COARSE_PAD * long * coarse).round() as usize;
    passes.push(Pass::new(width, height, coarse, pad));
    passes
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

/// Fill `tensor` with the detector's input for `pass`: the photo resized (bilinear, rounded
/// to 8 bits like OpenCV) inside its black border, as planar B, G, R floats in 0-255.
/// `tensor` is reused between calls, so the hot path does not allocate.
///
/// Each output row blends its two source rows first (contiguous, so it vectorises), then
/// samples that blend along x: 2.3x faster than blending four pixels per value, and equal to
/// that formula but for a value on a rounding boundary now and then (see the tests). Only the
/// border is cleared: the scaled photo overwrites the rest.
pub fn prepare(image: &RgbImage, pass: &Pass, tensor: &mut Vec<f32>) {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let (input_width, plane) = (pass.input_width, pass.input_width * pass.input_height);
    let (sw, sh) = (pass.scaled_width, pass.scaled_height);
    tensor.resize(3 * plane, 0.0);
    for channel in tensor.chunks_exact_mut(plane) {
        clear_border(channel, pass);
    }
    // Planes are B, G, R: RGB channel 2 goes to plane 0.
    let (blue, rest) = tensor.split_at_mut(plane);
    let (green, red) = rest.split_at_mut(plane);
    let raw = image.as_raw();
    let stride = width * 3;
    if (sw, sh) == (width, height) {
        for y in 0..sh {
            let line = (y + pass.pad) * input_width + pass.pad;
            let planes = [
                &mut blue[line..line + sw],
                &mut green[line..line + sw],
                &mut red[line..line + sw],
            ];
            copy_row(&raw[y * stride..(y + 1) * stride], planes);
        }
        return;
    }
    let columns: Vec<ColumnTap> = taps(width, sw)
        .iter()
        .map(|tap| ColumnTap {
            left: tap.i0 * 3,
            right: tap.i1 * 3,
            w: tap.w,
        })
        .collect();
    let mut blended = vec![0.0f32; stride];
    for (y, row) in taps(height, sh).iter().enumerate() {
        let line = (y + pass.pad) * input_width + pass.pad;
        let top = &raw[row.i0 * stride..(row.i0 + 1) * stride];
        let bottom = &raw[row.i1 * stride..(row.i1 + 1) * stride];
        blend_rows(top, bottom, row.w, &mut blended);
        let planes = [
            &mut blue[line..line + sw],
            &mut green[line..line + sw],
            &mut red[line..line + sw],
        ];
        sample_row(&blended, &columns, planes);
    }
}

/// A [`Tap`] along x, as offsets into a row of RGB values.
#[derive(Clone, Copy)]
struct ColumnTap {
    left: usize,
    right: usize,
    w: f32,
}

/// Zero the border of one plane: the rows above and below the scaled photo, and the columns
/// beside it.
fn clear_border(channel: &mut [f32], pass: &Pass) {
    let (input_width, pad) = (pass.input_width, pass.pad);
    let (top, bottom) = (pad, pad + pass.scaled_height);
    channel[..top * input_width].fill(0.0);
    channel[bottom * input_width..].fill(0.0);
    for line in channel[top * input_width..bottom * input_width].chunks_exact_mut(input_width) {
        line[..pad].fill(0.0);
        line[pad + pass.scaled_width..].fill(0.0);
    }
}

// The three row kernels are compiled for AVX2 too, and the best the CPU has is chosen at run
// time: the arithmetic is the same (no fused multiply-add), so the values are identical,
// only 1.9x sooner for a 1920x1080 photo's fine pass.

/// One row of RGB bytes into the B, G, R planes, unscaled.
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn copy_row(source: &[u8], [blue, green, red]: [&mut [f32]; 3]) {
    let planes = blue.iter_mut().zip(green.iter_mut()).zip(red.iter_mut());
    for (((b, g), r), p) in planes.zip(source.chunks_exact(3)) {
        (*r, *g, *b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
    }
}

/// `out = top + (bottom - top) * w`, value by value.
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn blend_rows(top: &[u8], bottom: &[u8], w: f32, out: &mut [f32]) {
    for ((out, &t), &b) in out.iter_mut().zip(top).zip(bottom) {
        let t = f32::from(t);
        *out = t + (f32::from(b) - t) * w;
    }
}

/// Sample a blended row at `columns` into the B, G, R planes, rounded to 8 bits as OpenCV
/// resizes into 8-bit pixels before it builds the blob (half up; the values lie in 0-255, so
/// `floor(v + 0.5)` is that rounding).
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn sample_row(blended: &[f32], columns: &[ColumnTap], [blue, green, red]: [&mut [f32]; 3]) {
    let planes = blue.iter_mut().zip(green.iter_mut()).zip(red.iter_mut());
    for (((b, g), r), column) in planes.zip(columns) {
        let (Some(left), Some(right)) = (
            blended.get(column.left..column.left + 3),
            blended.get(column.right..column.right + 3),
        ) else {
            continue;
        };
        let value = |c: usize| (left[c] + (right[c] - left[c]) * column.w + 0.5).floor();
        (*r, *g, *b) = (value(0), value(1), value(2));
    }
}

/// Turn a prepared input into the input of the photo's mirror image: each row of the scaled
/// photo reversed in place (the border stays where it is, as `prepare` places it). This is
/// `prepare` of the mirrored photo but for a value on a rounding boundary now and then (the
/// sample positions are mirror images in exact arithmetic, not quite in f32): mirrored poses
/// agree to 0.01 degrees (engine/CALIBRATION.md).
pub fn mirror_input(pass: &Pass, tensor: &mut [f32]) {
    let plane = pass.input_width * pass.input_height;
    for channel in tensor.chunks_exact_mut(plane) {
        for y in 0..pass.scaled_height {
            let line = (y + pass.pad) * pass.input_width + pass.pad;
            channel[line..line + pass.scaled_width].reverse();
        }
    }
}

/// The raw outputs of one stride: per grid cell, 1 cls, 1 obj, 4 bbox and 10 kps values.
pub struct StrideOutput<'a> {
    pub stride: usize,
    /// Grid columns: the input width / stride.
    pub cols: usize,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Turn the grid predictions of one stride into candidate detections (input pixels), as
/// OpenCV's `FaceDetectorYN::postProcess` does.
pub fn decode_stride(output: &StrideOutput<'_>, candidates: &mut Vec<Detection>) {
    let cols = output.cols.max(1);
    let stride = output.stride as f32;
    for index in 0..output.cls.len() {
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

/// A YuNet session and its input buffers, one per pass, reused by its next photo. They belong
/// to the session, not to a thread: the engine's request threads come and go by the dozen, and
/// buffers kept per thread (up to ~14 MB for a 1920x1080 photo) added up to gigabytes.
pub struct Detector {
    session: Session,
    buffers: Vec<Vec<f32>>,
}

impl Detector {
    pub fn new(session: Session) -> Self {
        Self {
            session,
            buffers: Vec::new(),
        }
    }
}

/// The faces of one photo.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Found {
    /// Coordinates in the photo's pixels, best score first.
    pub faces: Vec<Detection>,
    /// How many times YuNet ran.
    pub runs: usize,
}

/// The faces of a photo, each also seen in the photo's mirror image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Symmetric {
    /// Every face both runs found, the two sightings averaged (`measure::symmetrize`), best
    /// score first.
    pub faces: Vec<Detection>,
    /// The photo's own run, every face it found, best score first: its landmarks are the
    /// ones the embedding is aligned on (see `FaceModels::analyze`).
    pub photo: Vec<Detection>,
    /// How many times YuNet ran, photo and mirror.
    pub runs: usize,
}

/// Detect every face in `image` with every pass [`passes`] chooses for it.
pub fn detect(detector: &mut Detector, image: &RgbImage) -> Result<Found, DetectError> {
    let (width, height) = image.dimensions();
    let all = passes(width, height);
    let Detector { session, buffers } = detector;
    let mut inputs = Inputs::new(buffers, all.len());
    let mut seen = Vec::with_capacity(all.len());
    for pass in 0..all.len() {
        let run = Run {
            pass,
            mirrored: false,
        };
        seen.push(Some(inputs.run(session, image, &all, run)?));
    }
    let (faces, _) = merge(&seen);
    Ok(Found {
        faces,
        runs: all.len(),
    })
}

/// One run of the detector: a pass over the photo, or over its mirror image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    /// Index into the photo's [`passes`].
    pass: usize,
    mirrored: bool,
}

/// A detector's inputs for one photo, one buffer per pass, each prepared once: the mirror run
/// reverses it in place (and reverses it back for another photo run).
struct Inputs<'a> {
    buffers: &'a mut Vec<Vec<f32>>,
    /// Per pass: not prepared yet for this photo, or prepared (and whether mirrored now).
    holds: Vec<Option<bool>>,
}

impl<'a> Inputs<'a> {
    fn new(buffers: &'a mut Vec<Vec<f32>>, passes: usize) -> Self {
        buffers.resize_with(passes, Vec::new);
        Self {
            buffers,
            holds: vec![None; passes],
        }
    }

    /// The faces `run` finds, in the pixels of the photo or of its mirror.
    fn run(
        &mut self,
        session: &mut Session,
        image: &RgbImage,
        all: &[Pass],
        run: Run,
    ) -> Result<Vec<Detection>, DetectError> {
        let (pass, input) = (&all[run.pass], &mut self.buffers[run.pass]);
        let holds = &mut self.holds[run.pass];
        if holds.is_none() {
            prepare(image, pass, input);
            *holds = Some(false);
        }
        if *holds != Some(run.mirrored) {
            mirror_input(pass, input);
            *holds = Some(run.mirrored);
        }
        pass_faces(session, pass, input)
    }
}

/// Detect every face of `image` as [`detect`] does, and each again in its mirror image, the
/// two averaged (YuNet's landmarks are not mirror-symmetric: averaged, a mirrored photo gets
/// the mirrored pose, box and confidence, to a resize rounding: see [`mirror_input`]).
///
/// The mirror costs only detector runs: each pass's input is prepared once and reversed in
/// place. It runs only the passes that found a face on the photo (at 1920x1080 a face the
/// letterbox found spares it the fine pass, the costliest), and the others only when that
/// leaves a face unpaired: a face one pass found on the photo may be another pass's on the
/// mirror. Nothing is found in the mirror of a photo with no face.
///
/// With a `helper` session (one was free: a core is idle), the photo's passes and the
/// letterbox's mirror run (nearly every photo with a face needs it) are shared between this
/// thread and another, by input size ([`share`]); the answer is the same as without it.
/// Where a fine pass runs, `early` (with a helper only) is then handed the letterbox's faces
/// on the photo as soon as that run is done, on the thread that ran it, while the other
/// thread still runs the fine pass: the caller embeds the largest there ([`EarlyWork`]).
pub fn detect_symmetric(
    detector: &mut Detector,
    helper: Option<&mut Detector>,
    image: &RgbImage,
    early: Option<&EarlyWork<'_>>,
) -> Result<Symmetric, DetectError> {
    let (width, height) = image.dimensions();
    let all = passes(width, height);
    let n = all.len();
    let Detector { session, buffers } = detector;
    {
        let mut inputs = Inputs::new(buffers, n);
        let mut photo: Vec<Option<Vec<Detection>>> = vec![None; n];
        let mut mirror: Vec<Option<Vec<Detection>>> = vec![None; n];
        let mut runs = 0;
        let seen = match helper {
            None => (0..n)
                .map(|pass| {
                    let run = Run {
                        pass,
                        mirrored: false,
                    };
                    Ok((run, inputs.run(session, image, &all, run)?))
                })
                .collect::<Result<Vec<_>, DetectError>>()?,
            Some(helper) => {
                // Only beside a fine pass: without one the other thread has too little to do
                // meanwhile, and the early work would hold the helper session from the next
                // photo (three liveness frames at once were 15% slower).
                let early =
                    early.filter(|_| all.iter().any(|pass| pass.max_face_width.is_finite()));
                let (mine, theirs) = share(&all, early.map_or(0, |work| work.cost));
                // The letterbox's photo run hands its faces to `early` on its own thread.
                let run_and_hand_on = |inputs: &mut Inputs<'_>, session: &mut Session, run: Run| {
                    let faces = inputs.run(session, image, &all, run)?;
                    if let Some(work) = early.filter(|_| run.pass == 0 && !run.mirrored) {
                        (work.run)(&faces);
                    }
                    Ok((run, faces))
                };
                let (mine, theirs) = std::thread::scope(|scope| {
                    let theirs = scope.spawn(|| {
                        let Detector { session, buffers } = helper;
                        let mut inputs = Inputs::new(buffers, n);
                        theirs
                            .iter()
                            .map(|&run| run_and_hand_on(&mut inputs, session, run))
                            .collect::<Result<Vec<_>, DetectError>>()
                    });
                    let mine = mine
                        .iter()
                        .map(|&run| run_and_hand_on(&mut inputs, session, run))
                        .collect::<Result<Vec<_>, DetectError>>();
                    let theirs = theirs
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (mine, theirs)
                });
                let mut seen = mine?;
                seen.extend(theirs?);
                seen
            }
        };
        for (run, faces) in seen {
            runs += 1;
            let slot = if run.mirrored {
                &mut mirror
            } else {
                &mut photo
            };
            slot[run.pass] = Some(faces);
        }

        let (found, contributed) = merge(&photo);
        let mut result = Symmetric {
            faces: Vec::new(),
            photo: found,
            runs,
        };
        if result.photo.is_empty() {
            return Ok(result);
        }
        for everything in [false, true] {
            let wanted = |pass: usize| everything || contributed[pass];
            for (pass, seen) in mirror.iter_mut().enumerate() {
                if !wanted(pass) || seen.is_some() {
                    continue;
                }
                let run = Run {
                    pass,
                    mirrored: true,
                };
                *seen = Some(inputs.run(session, image, &all, run)?);
                result.runs += 1;
            }
            // Only the wanted passes' mirror runs count, also where the helper ran another
            // ahead of time: the answer must not depend on whether a helper was free.
            let considered: Vec<Option<Vec<Detection>>> = (0..n)
                .map(|pass| mirror[pass].clone().filter(|_| wanted(pass)))
                .collect();
            let (seen_mirrored, _) = merge(&considered);
            result.faces = super::measure::symmetrize(&result.photo, &seen_mirrored, width as f32);
            if result.faces.len() == result.photo.len() {
                break;
            }
        }
        Ok(result)
    }
}

/// Work handed the letterbox's faces on the photo as soon as they are found (see
/// [`detect_symmetric`]), and what it costs, in input pixels of the detector's time.
pub struct EarlyWork<'a> {
    pub run: &'a (dyn Fn(&[Detection]) + Sync),
    pub cost: usize,
}

/// The runs two threads share for a photo: every pass over the photo and the letterbox's
/// mirror run, each to the thread with less work so far, largest first; a run's work is its
/// input's pixels, and the letterbox's photo run also carries `early_cost` (the work handed
/// its faces). Within a thread a pass's photo run comes before its mirror run (so its input
/// is prepared once). For a 640x480 photo one thread runs the letterbox and the coarse pass,
/// the other the letterbox's mirror; at 1920x1080 one runs the fine
/// and coarse passes, the other the letterbox, the early work and the letterbox's mirror.
fn share(all: &[Pass], early_cost: usize) -> (Vec<Run>, Vec<Run>) {
    let size = |run: &Run| {
        let pixels = all[run.pass].input_width * all[run.pass].input_height;
        match run {
            Run {
                pass: 0,
                mirrored: false,
            } => pixels + early_cost,
            _ => pixels,
        }
    };
    let mut runs: Vec<Run> = (0..all.len())
        .map(|pass| Run {
            pass,
            mirrored: false,
        })
        .collect();
    runs.push(Run {
        pass: 0,
        mirrored: true,
    });
    runs.sort_by_key(|run| std::cmp::Reverse(size(run)));
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    let (mut my_size, mut their_size) = (0, 0);
    for run in runs {
        if my_size <= their_size {
            my_size += size(&run);
            mine.push(run);
        } else {
            their_size += size(&run);
            theirs.push(run);
        }
    }
    for side in [&mut mine, &mut theirs] {
        side.sort_by_key(|run| (run.pass, run.mirrored));
    }
    (mine, theirs)
}

/// The faces each pass found (`None`: not run), merged in pass order: an earlier pass wins
/// where two see the same face (see the module doc: the letterbox's landmarks are the
/// reference's). Also says which passes contributed a face. Best score first.
fn merge(per_pass: &[Option<Vec<Detection>>]) -> (Vec<Detection>, Vec<bool>) {
    let mut faces: Vec<Detection> = Vec::new();
    let mut contributed = vec![false; per_pass.len()];
    for (i, found) in per_pass.iter().enumerate() {
        for detection in found.iter().flatten() {
            if faces.iter().all(|k| k.iou(detection) <= NMS_THRESHOLD) {
                faces.push(*detection);
                contributed[i] = true;
            }
        }
    }
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    (faces, contributed)
}

/// One pass of the detector over its prepared `input`: the faces it reports, after NMS in
/// input pixels (as OpenCV does), in the photo's pixels.
fn pass_faces(
    session: &mut Session,
    pass: &Pass,
    input: &[f32],
) -> Result<Vec<Detection>, DetectError> {
    let mut candidates = Vec::new();
    let shape = [1usize, 3, pass.input_height, pass.input_width];
    let tensor = TensorRef::from_array_view((shape, input))?;
    let outputs = session.run(ort::inputs![tensor])?;
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
            cols: pass.input_width / stride,
            cls: get("cls")?,
            obj: get("obj")?,
            bbox: get("bbox")?,
            kps: get("kps")?,
        };
        decode_stride(&output, &mut candidates);
    }
    Ok(non_max_suppression(candidates, NMS_THRESHOLD, TOP_K)
        .iter()
        .map(|detection| pass.to_original(detection))
        .filter(|detection| detection.bbox[2] <= pass.max_face_width)
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
    fn the_letterbox_pass_is_the_references_scale() {
        let landscape = Pass::letterbox(1920, 1080);
        assert_eq!(
            (landscape.scaled_width, landscape.scaled_height),
            (640, 360)
        );
        assert_eq!((landscape.input_width, landscape.input_height), (640, 384));
        assert_eq!(
            (landscape.to_original_x, landscape.to_original_y),
            (3.0, 3.0)
        );
        // Small photos are enlarged, as the reference does.
        let portrait = Pass::letterbox(300, 600);
        assert_eq!((portrait.scaled_width, portrait.scaled_height), (320, 640));
        // A point at input pixel (100, 200) is at (93.75, 187.5) in the 300x600 photo.
        let detection = boxed(100.0, 200.0, 32.0, 64.0, 0.95);
        assert_eq!(
            portrait.to_original(&detection).bbox,
            [93.75, 187.5, 30.0, 60.0]
        );
    }

    #[test]
    fn the_fine_pass_keeps_the_smallest_face_visible_and_never_upscales() {
        assert_eq!(min_face_px(640, 480), 40.0);
        assert_eq!(min_face_px(1920, 1080), 40.0);
        assert_eq!(min_face_px(3840, 2160), 80.0);
        // A 1080x1080 photo: its short side is what exceeds 1080.
        assert_eq!(min_face_px(2160, 2160), 80.0);
        let all = passes(1920, 1080);
        assert_eq!(all.len(), 3, "letterbox, fine, coarse");
        let fine = all[1];
        assert_eq!((fine.scaled_width, fine.scaled_height), (1248, 702));
        assert_eq!((fine.input_width, fine.input_height), (1248, 704));
        // It reports faces the letterbox shows below 52 pixels: 156 pixels of the photo.
        assert_eq!(fine.max_face_width, 156.0);
        assert_eq!(all[0].max_face_width, f32::INFINITY);
        let fine = passes(3840, 2160)[1];
        assert_eq!((fine.scaled_width, fine.scaled_height), (1248, 702));
        // Where the letterbox shows a 40-pixel face at 26 pixels or more, no fine pass.
        assert_eq!(passes(640, 480).len(), 2);
        assert_eq!(passes(112, 112).len(), 2);
        assert_eq!(passes(960, 960).len(), 2);
        assert_eq!(passes(1000, 1000).len(), 3);
        assert_eq!(Pass::new(100, 50, 3.0, 0).scaled_width, 100);
    }

    #[test]
    fn the_coarse_pass_frames_the_whole_photo_and_maps_back() {
        let coarse = passes(1920, 1080)[2];
        assert_eq!((coarse.scaled_width, coarse.scaled_height), (160, 90));
        assert_eq!(coarse.pad, 40);
        assert_eq!((coarse.input_width, coarse.input_height), (256, 192));
        // Input pixel (40 + 10, 40 + 20) is photo pixel (120, 240).
        let detection = boxed(50.0, 60.0, 16.0, 8.0, 0.95);
        assert_eq!(
            coarse.to_original(&detection).bbox,
            [120.0, 240.0, 192.0, 96.0]
        );
        let small = passes(112, 112)[1];
        assert_eq!(
            (small.scaled_width, small.pad, small.input_width),
            (112, 28, 192)
        );
    }

    /// `prepare` as plainly written: every value from its four source pixels. The fast one
    /// must give exactly this.
    /// `prepare` as plainly written: every value from its four source pixels, rounded.
    fn prepare_plainly(image: &RgbImage, pass: &Pass) -> Vec<f32> {
        let (width, height) = image.dimensions();
        let (input_width, plane) = (pass.input_width, pass.input_width * pass.input_height);
        let mut tensor = vec![0.0; 3 * plane];
        let columns = taps(width as usize, pass.scaled_width);
        let rows = taps(height as usize, pass.scaled_height);
        let raw = image.as_raw();
        let stride = width as usize * 3;
        for (y, row) in rows.iter().enumerate() {
            let top = &raw[row.i0 * stride..(row.i0 + 1) * stride];
            let bottom = &raw[row.i1 * stride..(row.i1 + 1) * stride];
            let line = (y + pass.pad) * input_width + pass.pad;
            for (x, column) in columns.iter().enumerate() {
                for channel in 0..3 {
                    let at = |line: &[u8], i: usize| f32::from(line[i * 3 + channel]);
                    let upper =
                        at(top, column.i0) + (at(top, column.i1) - at(top, column.i0)) * column.w;
                    let lower = at(bottom, column.i0)
                        + (at(bottom, column.i1) - at(bottom, column.i0)) * column.w;
                    let value = (upper + (lower - upper) * row.w).round();
                    tensor[(2 - channel) * plane + line + x] = value;
                }
            }
        }
        tensor
    }

    /// How many values of `a` and `b` differ, and by at most how much.
    fn differences(a: &[f32], b: &[f32]) -> (usize, f32) {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .filter(|d| *d > 0.0)
            .fold((0, 0.0), |(n, m), d| (n + 1, m.max(d)))
    }

    #[test]
    fn prepare_is_the_bilinear_formula_to_a_rounding_boundary() {
        for (width, height) in [(1920, 1080), (640, 480), (1137, 910), (112, 112), (301, 97)] {
            let image = textured(width, height);
            for pass in passes(width, height) {
                let mut tensor = Vec::new();
                prepare(&image, &pass, &mut tensor);
                let (count, largest) = differences(&tensor, &prepare_plainly(&image, &pass));
                // Blending rows before columns sums in another order: a value sitting on a
                // half may round the other way.
                assert!(
                    largest <= 1.0 && count * 1000 <= tensor.len(),
                    "{width}x{height} {pass:?}: {count} values differ, by up to {largest}"
                );
            }
        }
    }

    /// A photo-like image: smooth gradients plus deterministic noise.
    fn textured(width: u32, height: u32) -> RgbImage {
        let mut state = 0x2545_f491_u32;
        RgbImage::from_fn(width, height, |x, y| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = state % 64;
            image::Rgb([
                ((x * 255 / width + noise) % 256) as u8,
                ((y * 255 / height + noise / 2) % 256) as u8,
                ((x + y + noise) % 256) as u8,
            ])
        })
    }

    #[test]
    fn a_mirrored_input_is_the_input_of_the_mirrored_photo() {
        for (width, height) in [(1920, 1080), (640, 480), (301, 97)] {
            let image = textured(width, height);
            let flipped = image::imageops::flip_horizontal(&image);
            for pass in passes(width, height) {
                let mut mirrored = Vec::new();
                prepare(&image, &pass, &mut mirrored);
                mirror_input(&pass, &mut mirrored);
                let mut direct = Vec::new();
                prepare(&flipped, &pass, &mut direct);
                // The sample positions are mirror images in exact arithmetic; in f32 a value
                // sitting on a rounding boundary may land one grey level apart.
                let (count, largest) = differences(&mirrored, &direct);
                assert!(
                    largest <= 1.0 && count * 100 <= direct.len(),
                    "{width}x{height} {pass:?}: {count} values differ, by up to {largest}"
                );
            }
        }
    }

    #[test]
    fn prepare_pads_with_black_and_swaps_to_bgr() {
        let image = RgbImage::from_pixel(64, 32, image::Rgb([10, 20, 30]));
        let pass = Pass::new(64, 32, 1.0, 8);
        assert_eq!((pass.input_width, pass.input_height), (96, 64));
        let mut tensor = vec![7.0; 5];
        prepare(&image, &pass, &mut tensor);
        let plane = 96 * 64;
        assert_eq!(tensor.len(), 3 * plane);
        let at = |p: usize, x: usize, y: usize| tensor[p * plane + y * 96 + x];
        assert_eq!((at(0, 8, 8), at(1, 8, 8), at(2, 8, 8)), (30.0, 20.0, 10.0));
        assert_eq!((at(0, 71, 39), at(2, 71, 39)), (30.0, 10.0));
        assert_eq!(
            (at(0, 7, 8), at(0, 72, 8), at(1, 8, 40), at(2, 95, 63)),
            (0.0, 0.0, 0.0, 0.0)
        );
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
                cols: 20,
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
