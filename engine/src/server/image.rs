//! Images in requests: inline `Bytes` or an `S3Object`, fetched, checked against Rekognition's
//! size limits, and handed to the face pipeline off the async runtime.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::error::ApiError;
use super::recent::{self, RecentAnalyses};
use crate::face::{FaceModels, ImageAnalysis};

/// Rekognition's limit for images passed inline as bytes.
pub const MAX_INLINE_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Rekognition's limit for images read from S3.
pub const MAX_S3_IMAGE_BYTES: usize = 15 * 1024 * 1024;

/// What Rekognition answers when it cannot read an `S3Object`.
pub const S3_UNREADABLE: &str =
    "Unable to get object metadata from S3. Check object key, region and/or access permissions.";

/// `Image`: exactly one of `Bytes` (base64 in JSON) or `S3Object`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    pub bytes: Option<String>,
    pub s3_object: Option<S3Object>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct S3Object {
    pub bucket: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Fetches images and runs the pipeline on them.
#[derive(Clone)]
pub struct ImageReader {
    pub models: Arc<FaceModels>,
    pub s3: aws_sdk_s3::Client,
    /// Analyses of images seen moments ago (the same selfie comes in DetectFaces, then in
    /// SearchFacesByImage).
    pub recent: RecentAnalyses,
}

impl ImageReader {
    /// The image's bytes, analysed: every face, largest first.
    pub async fn analyze(
        &self,
        image: Option<&Image>,
        field: &str,
    ) -> Result<ImageAnalysis, ApiError> {
        let image = image.ok_or_else(|| ApiError::invalid(format!("{field} is required")))?;
        let bytes = self.bytes(image, field).await?;
        self.analyze_bytes(bytes).await
    }

    /// An image already in hand (a liveness frame), analysed.
    pub async fn analyze_bytes(&self, bytes: Vec<u8>) -> Result<ImageAnalysis, ApiError> {
        let models = self.models.clone();
        let recent = self.recent.clone();
        // CPU-bound (hashing, and tens of milliseconds for a new image): never on the async
        // workers.
        let analysis = tokio::task::spawn_blocking(move || {
            let digest = recent::digest(&bytes);
            if let Some(known) = recent.get(&digest) {
                return Ok(known);
            }
            let analysis = Arc::new(models.analyze(&bytes)?);
            recent.put(digest, analysis.clone());
            Ok::<_, crate::face::ImageError>(analysis)
        })
        .await??;
        Ok(ImageAnalysis::clone(&analysis))
    }

    async fn bytes(&self, image: &Image, field: &str) -> Result<Vec<u8>, ApiError> {
        match (&image.bytes, &image.s3_object) {
            (Some(encoded), None) => decode_inline(encoded, field),
            (None, Some(object)) => self.fetch(object, field).await,
            _ => Err(ApiError::invalid(format!(
                "{field} must have exactly one of Bytes and S3Object"
            ))),
        }
    }

    async fn fetch(&self, object: &S3Object, field: &str) -> Result<Vec<u8>, ApiError> {
        let (Some(bucket), Some(key)) = (&object.bucket, &object.name) else {
            return Err(ApiError::invalid(format!(
                "{field}.S3Object needs Bucket and Name"
            )));
        };
        // Rekognition's own sentence: the object store's answer (headers, request ids, XML)
        // is for the operator's log, never for the caller.
        let unreadable = |detail: String| {
            tracing::info!(%bucket, %key, %detail, "S3 object unreadable");
            ApiError::InvalidS3Object(S3_UNREADABLE.into())
        };
        let output = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(object.version.clone())
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_s3::error::SdkError;
                let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                match &e {
                    // The object store answered: missing object, bucket, version or access.
                    SdkError::ServiceError(_) => unreadable(detail),
                    // We could not reach it at all: our problem, not the caller's.
                    _ => ApiError::Internal(format!("S3 unreachable: {detail}")),
                }
            })?;
        let too_large = || {
            ApiError::ImageTooLarge(format!(
                "Image size is too large: S3 images are limited to {MAX_S3_IMAGE_BYTES} bytes."
            ))
        };
        if output
            .content_length()
            .is_some_and(|n| n > MAX_S3_IMAGE_BYTES as i64)
        {
            return Err(too_large());
        }
        // Read in chunks and stop at the limit, whatever the object claims its length is.
        let mut body = output.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| unreadable(e.to_string()))?
        {
            if bytes.len() + chunk.len() > MAX_S3_IMAGE_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

fn decode_inline(encoded: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    // Base64 grows by 4/3: refuse what cannot fit before spending time decoding it.
    if encoded.len() > MAX_INLINE_IMAGE_BYTES.div_ceil(3) * 4 + 4 {
        return Err(too_large_inline());
    }
    let bytes = STANDARD
        .decode(encoded.trim_end())
        .map_err(|e| ApiError::Serialization(format!("{field}.Bytes is not valid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(format!("{field}.Bytes is empty")));
    }
    if bytes.len() > MAX_INLINE_IMAGE_BYTES {
        return Err(too_large_inline());
    }
    Ok(bytes)
}

fn too_large_inline() -> ApiError {
    ApiError::ImageTooLarge(format!(
        "Image size is too large: inline images are limited to {MAX_INLINE_IMAGE_BYTES} bytes."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_images_are_limited_to_five_megabytes() {
        let fits = STANDARD.encode(vec![1u8; MAX_INLINE_IMAGE_BYTES]);
        assert_eq!(
            decode_inline(&fits, "Image").unwrap().len(),
            MAX_INLINE_IMAGE_BYTES
        );
        let over = STANDARD.encode(vec![1u8; MAX_INLINE_IMAGE_BYTES + 1]);
        assert!(matches!(
            decode_inline(&over, "Image"),
            Err(ApiError::ImageTooLarge(_))
        ));
        assert!(matches!(
            decode_inline("***", "Image"),
            Err(ApiError::Serialization(_))
        ));
        assert!(matches!(
            decode_inline("", "Image"),
            Err(ApiError::InvalidParameter(_))
        ));
    }
}
