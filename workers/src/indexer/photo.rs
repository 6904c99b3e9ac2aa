//! What the bytes of an upload are: a JPEG or PNG (by their magic bytes, not the key's
//! extension) and how many pixels it shows once its EXIF orientation is applied. Only the
//! header is read; decoding the picture is the face service's job.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader};

/// The image formats a registration photo may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhotoFormat {
    Jpeg,
    Png,
}

/// The header of a registration photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhotoInfo {
    pub format: PhotoFormat,
    /// Pixels as displayed (width and height swapped for a photo stored rotated by 90°).
    pub width: u32,
    pub height: u32,
}

/// Why the bytes are not a registration photo.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the bytes are not a JPEG or PNG image (format: {0})")]
    Format(String),
    #[error("the image header cannot be read")]
    Header(#[source] image::ImageError),
}

/// Reads the format, size and orientation of `bytes`.
pub fn inspect(bytes: &[u8]) -> Result<PhotoInfo, PhotoError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PhotoError::Header(image::ImageError::IoError(e)))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => PhotoFormat::Jpeg,
        Some(ImageFormat::Png) => PhotoFormat::Png,
        Some(other) => return Err(PhotoError::Format(format!("{other:?}"))),
        None => return Err(PhotoError::Format("unknown".into())),
    };
    let mut decoder = reader.into_decoder().map_err(PhotoError::Header)?;
    let (width, height) = decoder.dimensions();
    // A missing or unreadable orientation tag means "as stored", as viewers treat it.
    let turned = matches!(
        decoder.orientation(),
        Ok(Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH)
    );
    let (width, height) = if turned {
        (height, width)
    } else {
        (width, height)
    };
    Ok(PhotoInfo {
        format,
        width,
        height,
    })
}

/// Whether S3's `Content-Type` allows an image: a JPEG or PNG type, or none in particular
/// (clients that upload with a generic type are common; the magic bytes decide then).
pub fn content_type_allowed(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "" | "image/jpeg"
            | "image/jpg"
            | "image/png"
            | "application/octet-stream"
            | "binary/octet-stream"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::new(width, height);
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                image.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::new(width, height);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&image)
            .unwrap();
        out
    }

    #[test]
    fn the_bytes_decide_the_format() {
        let info = inspect(&png(30, 20)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (PhotoFormat::Png, 30, 20)
        );
        let info = inspect(&jpeg(40, 10)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (PhotoFormat::Jpeg, 40, 10)
        );
    }

    #[test]
    fn anything_else_is_not_a_photo() {
        assert!(matches!(
            inspect(b"hello, not an image"),
            Err(PhotoError::Format(_))
        ));
        assert!(matches!(
            inspect(b"GIF89a\x01\x00\x01\x00"),
            Err(PhotoError::Format(_))
        ));
        // A JPEG signature with nothing after it.
        assert!(inspect(&[0xFF, 0xD8, 0xFF, 0xE0]).is_err());
        assert!(inspect(&[]).is_err());
    }

    #[test]
    fn content_types() {
        assert!(content_type_allowed(None));
        assert!(content_type_allowed(Some("image/jpeg")));
        assert!(content_type_allowed(Some("image/PNG; charset=binary")));
        assert!(content_type_allowed(Some("binary/octet-stream")));
        assert!(!content_type_allowed(Some("text/plain")));
        assert!(!content_type_allowed(Some("image/gif")));
    }
}
