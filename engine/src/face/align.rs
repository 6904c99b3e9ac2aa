//! Alignment: cut a face out of the photo as the 112x112 crop the embedder was trained on.
//!
//! SFace expects the five landmarks (eyes, nose tip, mouth corners) at the standard ArcFace
//! positions. As OpenCV's `FaceRecognizerSF::alignCrop` does, the engine finds the similarity
//! transform (rotation, uniform scale, translation; no shear, no mirror) that best maps the
//! detected landmarks onto that template in the least-squares sense (Umeyama's method), then
//! samples the photo through it with bilinear interpolation, black outside the photo.
//!
//! In two dimensions Umeyama's solution restricted to proper rotations has a closed form: with
//! both point sets centred on their means, `a = Σ(s·d) / Σ|s|²` and `b = Σ(s×d) / Σ|s|²`, and the
//! transform is `[a -b; b a]` plus the translation that maps mean onto mean. That is what
//! [`Similarity::estimate`] computes; no SVD is needed.

use image::RgbImage;

/// Width and height of the aligned crop.
pub const ALIGNED_SIDE: usize = 112;

/// Where the five landmarks sit in a 112x112 ArcFace crop (the values OpenCV hard-codes),
/// in the detector's order: image-left eye, other eye, nose tip, image-left mouth corner,
/// other mouth corner.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// `(x, y) -> (a·x - b·y + tx, b·x + a·y + ty)`: a rotation by `atan2(b, a)`, a scale by
/// `hypot(a, b)` and a translation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// The similarity that maps `from` onto `to` with the least squared error.
    pub fn estimate(from: &[[f32; 2]; 5], to: &[[f32; 2]; 5]) -> Similarity {
        let mean = |points: &[[f32; 2]; 5]| {
            let n = points.len() as f64;
            let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), p| {
                (sx + f64::from(p[0]), sy + f64::from(p[1]))
            });
            (sx / n, sy / n)
        };
        let (from_x, from_y) = mean(from);
        let (to_x, to_y) = mean(to);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in from.iter().zip(to) {
            let (sx, sy) = (f64::from(s[0]) - from_x, f64::from(s[1]) - from_y);
            let (dx, dy) = (f64::from(d[0]) - to_x, f64::from(d[1]) - to_y);
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
            norm += sx * sx + sy * sy;
        }
        // All five landmarks on one spot (never from a real detection): fall back to a pure
        // translation rather than dividing by zero.
        let (a, b) = if norm > f64::EPSILON {
            (dot / norm, cross / norm)
        } else {
            (1.0, 0.0)
        };
        Similarity {
            a,
            b,
            tx: to_x - (a * from_x - b * from_y),
            ty: to_y - (b * from_x + a * from_y),
        }
    }

    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        )
    }

    /// The transform that undoes this one (`None` when it collapses everything to a point).
    pub fn inverse(&self) -> Option<Similarity> {
        let det = self.a * self.a + self.b * self.b;
        if det <= f64::EPSILON {
            return None;
        }
        let (a, b) = (self.a / det, -self.b / det);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }
}

/// A face warped onto the ArcFace template: 112x112 interleaved RGB.
#[derive(Clone, Debug)]
pub struct AlignedFace {
    pub pixels: Vec<u8>,
}

impl AlignedFace {
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * ALIGNED_SIDE + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// Warp the face whose landmarks (photo pixels) are `landmarks` onto the ArcFace template,
/// as OpenCV's `alignCrop` (`warpAffine`, `INTER_LINEAR`, constant black border).
pub fn align(image: &RgbImage, landmarks: &[[f32; 2]; 5]) -> AlignedFace {
    let to_crop = Similarity::estimate(landmarks, &ARCFACE_TEMPLATE);
    let mut pixels = vec![0u8; ALIGNED_SIDE * ALIGNED_SIDE * 3];
    let Some(to_photo) = to_crop.inverse() else {
        return AlignedFace { pixels };
    };
    let (width, height) = (i64::from(image.width()), i64::from(image.height()));
    let raw = image.as_raw();
    let stride = width as usize * 3;
    // One neighbour's RGB, black outside the photo (OpenCV's BORDER_CONSTANT).
    let neighbour = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= width || y >= height {
            [0.0; 3]
        } else {
            let i = y as usize * stride + x as usize * 3;
            [
                f32::from(raw[i]),
                f32::from(raw[i + 1]),
                f32::from(raw[i + 2]),
            ]
        }
    };
    for (index, out) in pixels.chunks_exact_mut(3).enumerate() {
        // warpAffine maps integer output coordinates (not pixel centres + 0.5).
        let (x, y) = ((index % ALIGNED_SIDE) as f64, (index / ALIGNED_SIDE) as f64);
        let (sx, sy) = to_photo.apply(x, y);
        // Far outside (or not a number): leave black without converting to integers.
        if !(sx > -2.0 && sy > -2.0 && sx < width as f64 + 1.0 && sy < height as f64 + 1.0) {
            continue;
        }
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p10) = (neighbour(x0, y0), neighbour(x0 + 1, y0));
        let (p01, p11) = (neighbour(x0, y0 + 1), neighbour(x0 + 1, y0 + 1));
        for channel in 0..3 {
            let top = p00[channel] + (p10[channel] - p00[channel]) * fx;
            let bottom = p01[channel] + (p11[channel] - p01[channel]) * fx;
            let value = top + (bottom - top) * fy;
            out[channel] = value.round().clamp(0.0, 255.0) as u8;
        }
    }
    AlignedFace { pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3
    }

    #[test]
    fn the_template_maps_onto_itself() {
        let t = Similarity::estimate(&ARCFACE_TEMPLATE, &ARCFACE_TEMPLATE);
        assert!((t.a - 1.0).abs() < 1e-9 && t.b.abs() < 1e-9, "{t:?}");
        assert!(t.tx.abs() < 1e-6 && t.ty.abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn recovers_a_known_rotation_scale_and_shift() {
        // Landmarks of a face 3x larger than the template, rotated 30 degrees and moved:
        // the estimate must be exactly the inverse of that transform.
        let (angle, scale) = (30f64.to_radians(), 3.0);
        let known = Similarity {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx: 400.0,
            ty: -25.0,
        };
        let photo = ARCFACE_TEMPLATE.map(|[x, y]| {
            let (px, py) = known.apply(f64::from(x), f64::from(y));
            [px as f32, py as f32]
        });
        let estimated = Similarity::estimate(&photo, &ARCFACE_TEMPLATE);
        let expected = known.inverse().unwrap();
        assert!((estimated.a - expected.a).abs() < 1e-6, "{estimated:?}");
        assert!((estimated.b - expected.b).abs() < 1e-6, "{estimated:?}");
        for (p, t) in photo.iter().zip(ARCFACE_TEMPLATE) {
            let mapped = estimated.apply(f64::from(p[0]), f64::from(p[1]));
            assert!(
                close(mapped, (f64::from(t[0]), f64::from(t[1]))),
                "{mapped:?}"
            );
        }
    }

    #[test]
    fn inverse_undoes_the_transform() {
        let t = Similarity {
            a: 0.5,
            b: -1.2,
            tx: 7.0,
            ty: 3.0,
        };
        let (x, y) = t.apply(10.0, -4.0);
        assert!(close(t.inverse().unwrap().apply(x, y), (10.0, -4.0)));
        let collapsed = Similarity {
            a: 0.0,
            b: 0.0,
            tx: 1.0,
            ty: 1.0,
        };
        assert_eq!(collapsed.inverse(), None);
    }

    #[test]
    fn crop_of_a_template_sized_face_is_the_photo_itself() {
        // A 112x112 photo whose landmarks already sit on the template is copied unchanged.
        let photo = RgbImage::from_fn(112, 112, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let crop = align(&photo, &ARCFACE_TEMPLATE);
        assert_eq!(crop.rgb(10, 20), [10, 20, 200]);
        assert_eq!(crop.rgb(111, 111), [111, 111, 200]);
    }

    #[test]
    fn outside_the_photo_is_black() {
        let photo = RgbImage::from_pixel(112, 112, image::Rgb([255, 255, 255]));
        // The face sits so far right that most of the crop falls outside the photo.
        let shifted = ARCFACE_TEMPLATE.map(|[x, y]| [x + 100.0, y]);
        let crop = align(&photo, &shifted);
        assert_eq!(crop.rgb(100, 56), [0, 0, 0]);
        assert_eq!(crop.rgb(2, 56), [255, 255, 255]);
    }
}
