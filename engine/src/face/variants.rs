//! Simple variants of a photo, the way real uploads differ from one another: re-encoded at
//! another JPEG quality, mirrored, scaled, cropped to the face, darkened, blurred. The pose
//! and confidence calibration (engine/CALIBRATION.md) and the gate's refusal table
//! (`facegate bench gate`) measure the engine's answers on every one of them, so a measure
//! that flips between two uploads of the same face shows up as a refusal.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{ImageEncoder, RgbImage};

use super::BoundingBox;

/// What was done to the photo.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Decoded and encoded again as JPEG at this quality (1-100).
    Reencode(u8),
    /// Flipped left to right (and encoded at quality 95).
    Mirror,
    /// Resized by this factor (and encoded at quality 95).
    Scale(f32),
    /// Cut to the face's box plus this margin on every side, as a fraction of the box's side.
    Crop(f32),
    /// Every pixel multiplied by this factor (< 1 darkens).
    Darken(f32),
    /// A Gaussian blur of this sigma, in pixels of a photo whose face is 200 px wide (the
    /// sigma is scaled with the face, so every photo loses the same detail).
    Blur(f32),
}

impl Change {
    /// A short name for tables: `q70`, `mirror`, `scale0.5`, `crop0.3`, `dark0.4`, `blur3`.
    pub fn label(&self) -> String {
        match self {
            Change::Reencode(q) => format!("q{q}"),
            Change::Mirror => "mirror".into(),
            Change::Scale(f) => format!("scale{f}"),
            Change::Crop(m) => format!("crop{m}"),
            Change::Darken(f) => format!("dark{f}"),
            Change::Blur(s) => format!("blur{s}"),
        }
    }

    /// Whether the variant is still a fair upload of a usable face: re-encoding, mirroring,
    /// scaling and cropping keep the face as it was; darkening and blurring are meant to
    /// degrade it (they calibrate the confidence and the quality bars, and a gate may refuse
    /// them).
    pub fn keeps_the_face_usable(&self) -> bool {
        !matches!(self, Change::Darken(_) | Change::Blur(_))
    }
}

/// The variants the gate must take as well as the original (the list).
pub const USABLE: [Change; 9] = [
    Change::Reencode(70),
    Change::Reencode(85),
    Change::Reencode(95),
    Change::Mirror,
    Change::Scale(0.5),
    Change::Scale(0.75),
    Change::Scale(1.5),
    Change::Crop(0.3),
    Change::Crop(0.6),
];

/// Degraded variants: a doubtful face the confidence and quality bars are calibrated on.
pub const DEGRADED: [Change; 4] = [
    Change::Darken(0.35),
    Change::Darken(0.15),
    Change::Blur(3.0),
    Change::Blur(8.0),
];

#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    #[error("decoding the photo: {0}")]
    Decode(#[from] super::ImageError),
    #[error("encoding the variant: {0}")]
    Encode(#[from] image::ImageError),
    #[error("cropping needs the face's bounding box")]
    NoBox,
}

/// JPEG bytes of `photo` at `quality`.
pub fn jpeg(photo: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).write_image(
        photo.as_raw(),
        photo.width(),
        photo.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// Apply `change` to `photo` (upright RGB). `face` is the face's box in ratios of the photo
/// (needed by [`Change::Crop`] and [`Change::Blur`]). Returns JPEG bytes.
pub fn apply(
    photo: &RgbImage,
    face: Option<BoundingBox>,
    change: Change,
) -> Result<Vec<u8>, VariantError> {
    let (w, h) = photo.dimensions();
    let image = match change {
        Change::Reencode(quality) => return Ok(jpeg(photo, quality)?),
        Change::Mirror => image::imageops::flip_horizontal(photo),
        Change::Scale(factor) => {
            let size = |n: u32| ((n as f32 * factor).round() as u32).max(1);
            image::imageops::resize(photo, size(w), size(h), FilterType::Triangle)
        }
        Change::Crop(margin) => {
            let b = face.ok_or(VariantError::NoBox)?;
            let (bw, bh) = (b.width * w as f32, b.height * h as f32);
            let side = bw.max(bh);
            let left = (b.left * w as f32 - margin * side).max(0.0);
            let top = (b.top * h as f32 - margin * side).max(0.0);
            let right = (b.left * w as f32 + bw + margin * side).min(w as f32);
            let bottom = (b.top * h as f32 + bh + margin * side).min(h as f32);
            let (x, y) = (left as u32, top as u32);
            let cw = ((right - left) as u32).clamp(1, w - x);
            let ch = ((bottom - top) as u32).clamp(1, h - y);
            image::imageops::crop_imm(photo, x, y, cw, ch).to_image()
        }
        Change::Darken(factor) => {
            let mut dark = photo.clone();
            for value in dark.iter_mut() {
                *value = (f32::from(*value) * factor).round().clamp(0.0, 255.0) as u8;
            }
            dark
        }
        Change::Blur(sigma) => {
            let face_width = face.map_or(200.0, |b| b.width * w as f32).max(1.0);
            image::imageops::blur(photo, sigma * face_width / 200.0)
        }
    };
    Ok(jpeg(&image, 95)?)
}

/// Decode `bytes` into the upright RGB photo the pipeline sees (EXIF orientation applied).
pub fn decode(bytes: &[u8]) -> Result<RgbImage, VariantError> {
    Ok(super::decode::decode(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> RgbImage {
        RgbImage::from_fn(100, 80, |x, y| image::Rgb([x as u8 * 2, y as u8 * 3, 100]))
    }

    #[test]
    fn each_change_does_what_it_says() {
        let p = photo();
        let face = Some(BoundingBox {
            left: 0.4,
            top: 0.25,
            width: 0.2,
            height: 0.25,
        });
        let size = |c: Change| {
            let bytes = apply(&p, face, c).unwrap();
            decode(&bytes).unwrap().dimensions()
        };
        assert_eq!(size(Change::Reencode(70)), (100, 80));
        assert_eq!(size(Change::Scale(0.5)), (50, 40));
        assert_eq!(size(Change::Scale(1.5)), (150, 120));
        // Box 20x20 at (40, 20), margin 0.5 of 20 px on every side.
        assert_eq!(size(Change::Crop(0.5)), (40, 40));
        let mirrored = decode(&apply(&p, face, Change::Mirror).unwrap()).unwrap();
        assert!(mirrored.get_pixel(99, 0)[0] < 10 && mirrored.get_pixel(0, 0)[0] > 180);
        let dark = decode(&apply(&p, face, Change::Darken(0.5)).unwrap()).unwrap();
        assert!(dark.get_pixel(50, 40)[2] < 60);
        assert!(matches!(
            apply(&p, None, Change::Crop(0.3)),
            Err(VariantError::NoBox)
        ));
        assert_eq!(Change::Scale(0.5).label(), "scale0.5");
        assert!(
            Change::Mirror.keeps_the_face_usable() && !Change::Blur(3.0).keeps_the_face_usable()
        );
    }
}
