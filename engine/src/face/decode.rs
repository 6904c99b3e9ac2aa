//! Decoding: turn the caller's bytes into an upright RGB image, or say why not.
//!
//! Only JPEG and PNG are accepted (Rekognition's formats). The EXIF orientation of a JPEG is
//! applied, so a phone photo taken sideways is analysed the way it is displayed, and every
//! coordinate the engine reports is relative to that upright image. Pixel dimensions are
//! checked from the header, before the pixels are allocated, so a small file claiming a huge
//! image costs nothing.
//!
//! The JPEG decoder is lenient: given half a file it returns the top half and grey below. A
//! truncated upload must be refused rather than analysed, so JPEGs are first walked marker by
//! marker ([`check_jpeg_complete`]) to make sure the image data reaches its end-of-image marker.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::ImageError;

/// Largest width or height accepted. Rekognition documents no single limit for its face
/// operations (4096 px for DetectProtectiveEquipment, 10,000 px for DetectLabels); 4096 per
/// side covers a 12-megapixel phone photo and bounds the memory one request can take.
pub const MAX_SIDE: u32 = 4096;

/// Most memory the decoder may allocate: a 4096x4096 RGBA image at 16 bits per channel, the
/// largest a PNG within [`MAX_SIDE`] can need.
const MAX_DECODE_BYTES: u64 = MAX_SIDE as u64 * MAX_SIDE as u64 * 8;

/// Decode a JPEG or PNG into upright 8-bit RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::InvalidFormat(format!("reading the image: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        Some(other) => {
            return Err(ImageError::InvalidFormat(format!(
                "{other:?} images are not supported: send a JPEG or PNG"
            )));
        }
        None => {
            return Err(ImageError::InvalidFormat(
                "not a JPEG or PNG image".to_string(),
            ));
        }
    }
    if reader.format() == Some(ImageFormat::Jpeg) {
        check_jpeg_complete(bytes).map_err(ImageError::InvalidFormat)?;
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height)?;
    // A damaged EXIF block should not make an otherwise good photo unusable: treat it as
    // "no rotation", which is what a viewer that cannot read it would show.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn check_dimensions(width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::InvalidFormat(format!(
            "the image is {width}x{height} pixels"
        )));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::TooLarge(format!(
            "{width}x{height} pixels; at most {MAX_SIDE} pixels per side are accepted"
        )));
    }
    Ok(())
}

/// Walk a JPEG's segments from the start-of-image marker to the end-of-image marker, saying
/// what is wrong when the file stops first. Segments with a length (APPn, DQT, DHT, SOF, SOS
/// headers...) are skipped by their length, which also skips EXIF thumbnails and their own
/// markers. Entropy-coded data runs until the next marker: inside it a 0xFF byte is always
/// followed by 0x00 (stuffing) or a restart marker (0xD0-0xD7). Bytes after the end-of-image
/// marker (some cameras append data) are ignored.
pub fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    const SOI: u8 = 0xD8;
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != SOI {
        return Err("not a JPEG: no start-of-image marker".to_string());
    }
    let truncated = |at: usize| {
        Err(format!(
            "truncated JPEG: the data ends at byte {at} before the end-of-image marker"
        ))
    };
    let mut at = 2;
    loop {
        // A marker: one or more 0xFF fill bytes, then the marker code.
        if at >= bytes.len() {
            return truncated(bytes.len());
        }
        if bytes[at] != 0xFF {
            return Err(format!("corrupt JPEG: expected a marker at byte {at}"));
        }
        while at < bytes.len() && bytes[at] == 0xFF {
            at += 1;
        }
        let Some(&code) = bytes.get(at) else {
            return truncated(bytes.len());
        };
        at += 1;
        match code {
            EOI => return Ok(()),
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return truncated(bytes.len());
        };
        if length < 2 {
            return Err(format!(
                "corrupt JPEG: segment length {length} at byte {at}"
            ));
        }
        at += length;
        if at > bytes.len() {
            return truncated(bytes.len());
        }
        if code == SOS {
            // Skip the entropy-coded scan up to the next real marker.
            loop {
                match bytes.get(at..at + 2) {
                    None => return truncated(bytes.len()),
                    Some([0xFF, next]) if *next != 0x00 && !(0xD0..=0xD7).contains(next) => break,
                    _ => at += 1,
                }
            }
        }
    }
}

/// The decoder's own limit checks mean "too large"; anything else means the bytes are bad.
fn classify(error: image::ImageError) -> ImageError {
    match error {
        image::ImageError::Limits(_) => ImageError::TooLarge(format!(
            "{error}; at most {MAX_SIDE} pixels per side are accepted"
        )),
        other => ImageError::InvalidFormat(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_pixel(width, height, Rgb([120, 130, 140]));
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

    #[test]
    fn decodes_a_png() {
        let image = decode(&png(20, 10)).unwrap();
        assert_eq!(image.dimensions(), (20, 10));
        assert_eq!(image.get_pixel(3, 3), &Rgb([120, 130, 140]));
    }

    #[test]
    fn refuses_garbage_empty_and_other_formats() {
        for bytes in [&b""[..], b"hello, not an image", b"GIF89a\x01\x00\x01\x00"] {
            assert!(
                matches!(decode(bytes), Err(ImageError::InvalidFormat(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn refuses_a_truncated_png() {
        let bytes = png(64, 64);
        let result = decode(&bytes[..bytes.len() / 2]);
        assert!(
            matches!(result, Err(ImageError::InvalidFormat(_))),
            "{result:?}"
        );
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .write_image(
                image.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    #[test]
    fn a_complete_jpeg_passes_the_marker_walk_even_with_trailing_bytes() {
        let mut bytes = jpeg(64, 48);
        assert_eq!(check_jpeg_complete(&bytes), Ok(()));
        bytes.extend_from_slice(b"appended by a camera");
        assert_eq!(check_jpeg_complete(&bytes), Ok(()));
        assert_eq!(decode(&bytes).unwrap().dimensions(), (64, 48));
    }

    #[test]
    fn a_png_with_bytes_after_its_end_still_decodes() {
        // Load generators append random bytes to make every selfie new to the engine's cache.
        let mut bytes = png(40, 30);
        bytes.extend_from_slice(&[0x5A; 16]);
        assert_eq!(decode(&bytes).unwrap().dimensions(), (40, 30));
    }

    #[test]
    fn refuses_a_jpeg_cut_anywhere() {
        let bytes = jpeg(64, 48);
        // Every cut point: inside the headers, the tables and the scan, and just before EOI.
        for cut in (3..bytes.len() - 1).step_by(7).chain([bytes.len() - 1]) {
            let result = decode(&bytes[..cut]);
            assert!(
                matches!(result, Err(ImageError::InvalidFormat(_))),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn refuses_oversized_images_before_decoding() {
        let result = decode(&png(MAX_SIDE + 1, 2));
        assert!(matches!(result, Err(ImageError::TooLarge(_))), "{result:?}");
        assert!(decode(&png(MAX_SIDE, 2)).is_ok());
    }
}
