//! The face collection, as the registration pipeline uses it: every Rekognition call goes
//! through here, after a token from the process's one [`FaceServiceLimiter`].
//!
//! Errors are sorted once, here: an image Rekognition cannot read or that is too large is the
//! photo's fault ([`FaceError::Photo`], a final rejection); everything else (throttling, a
//! timeout, a missing collection, the engine down) may pass ([`FaceError::Service`], retried).

use std::sync::Arc;

use aws_sdk_rekognition::config::retry::RetryConfig;
use aws_sdk_rekognition::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{Attribute, FaceDetail, Image, QualityFilter};
use facegate_shared::rate_limit::{FaceServiceLimiter, is_throttling};
use facegate_shared::registration::RejectionReason;
use facegate_shared::worker::BoxError;

/// Rekognition's limit of face ids per DeleteFaces call.
const DELETE_BATCH: usize = 4096;

/// Why a face-service call failed.
#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    /// The photo itself is refused (not a readable JPEG/PNG, or too large): never retried.
    #[error("{call} refused the photo ({reason:?})")]
    Photo {
        call: &'static str,
        reason: RejectionReason,
        #[source]
        source: BoxError,
    },
    /// Anything that may go away: retried through SQS.
    #[error("{call} failed{}", if *.throttled { " (throttled)" } else { "" })]
    Service {
        call: &'static str,
        throttled: bool,
        #[source]
        source: BoxError,
    },
}

impl FaceError {
    fn from_sdk<E>(call: &'static str, error: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = error
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_owned);
        let reason = match code.as_deref() {
            Some("InvalidImageFormatException") => Some(RejectionReason::NotAnImage),
            Some("ImageTooLargeException") => Some(RejectionReason::TooLarge),
            _ => None,
        };
        match reason {
            Some(reason) => FaceError::Photo {
                call,
                reason,
                source: Box::new(error),
            },
            None => FaceError::Service {
                call,
                throttled: is_throttling(code.as_deref()),
                source: Box::new(error),
            },
        }
    }
}

/// A face of the collection that matched a search.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceMatch {
    pub face_id: String,
    /// The upload id the face was indexed for.
    pub external_image_id: Option<String>,
    pub similarity: f32,
}

/// One collection and the limiter every call waits on. Cheap to clone.
#[derive(Clone)]
pub struct FaceCollection {
    rekognition: aws_sdk_rekognition::Client,
    collection_id: String,
    limiter: Arc<FaceServiceLimiter>,
}

fn image(photo: &[u8]) -> Image {
    Image::builder().bytes(Blob::new(photo.to_vec())).build()
}

fn matches(found: &[aws_sdk_rekognition::types::FaceMatch]) -> Vec<FaceMatch> {
    found
        .iter()
        .filter_map(|m| {
            let face = m.face()?;
            Some(FaceMatch {
                face_id: face.face_id()?.to_string(),
                external_image_id: face.external_image_id().map(str::to_owned),
                similarity: m.similarity().unwrap_or_default(),
            })
        })
        .collect()
}

impl FaceCollection {
    pub fn new(
        rekognition: aws_sdk_rekognition::Client,
        collection_id: String,
        limiter: Arc<FaceServiceLimiter>,
    ) -> Self {
        Self {
            rekognition,
            collection_id,
            limiter,
        }
    }

    pub fn id(&self) -> &str {
        &self.collection_id
    }

    /// Every face of the photo with every measure (pose, quality, bounding box).
    pub async fn detect(&self, photo: &[u8]) -> Result<Vec<FaceDetail>, FaceError> {
        self.limiter.acquire().await;
        let out = self
            .rekognition
            .detect_faces()
            .image(image(photo))
            .attributes(Attribute::All)
            .send()
            .await
            .map_err(|e| FaceError::from_sdk("DetectFaces", e))?;
        Ok(out.face_details.unwrap_or_default())
    }

    /// Indexes the photo's one face under `external_image_id` (the upload id); the face id.
    ///
    /// The quality gate already ran, so no `QualityFilter`. The SDK does not retry this call:
    /// IndexFaces has no idempotency token, and a retry after a lost answer would index the
    /// face twice. A failure goes back to SQS instead, whose redelivery looks for the face a
    /// lost answer may have left (see the indexer).
    pub async fn index(
        &self,
        photo: &[u8],
        external_image_id: &str,
    ) -> Result<Option<String>, FaceError> {
        self.limiter.acquire().await;
        let out = self
            .rekognition
            .index_faces()
            .collection_id(&self.collection_id)
            .image(image(photo))
            .external_image_id(external_image_id)
            .max_faces(1)
            .quality_filter(QualityFilter::None)
            .customize()
            .config_override(
                aws_sdk_rekognition::config::Builder::default()
                    .retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| FaceError::from_sdk("IndexFaces", e))?;
        Ok(out
            .face_records()
            .iter()
            .find_map(|r| r.face()?.face_id().map(str::to_owned)))
    }

    /// The collection's faces that match the photo's largest face at `threshold` or more.
    pub async fn search_by_image(
        &self,
        photo: &[u8],
        threshold: f32,
        max_faces: i32,
    ) -> Result<Vec<FaceMatch>, FaceError> {
        self.limiter.acquire().await;
        let out = self
            .rekognition
            .search_faces_by_image()
            .collection_id(&self.collection_id)
            .image(image(photo))
            .face_match_threshold(threshold)
            .max_faces(max_faces)
            .send()
            .await
            .map_err(|e| FaceError::from_sdk("SearchFacesByImage", e))?;
        Ok(matches(out.face_matches()))
    }

    /// The collection's faces that match `face_id` at `threshold` or more (itself left out).
    pub async fn search(
        &self,
        face_id: &str,
        threshold: f32,
        max_faces: i32,
    ) -> Result<Vec<FaceMatch>, FaceError> {
        self.limiter.acquire().await;
        let out = self
            .rekognition
            .search_faces()
            .collection_id(&self.collection_id)
            .face_id(face_id)
            .face_match_threshold(threshold)
            .max_faces(max_faces)
            .send()
            .await
            .map_err(|e| FaceError::from_sdk("SearchFaces", e))?;
        Ok(matches(out.face_matches()))
    }

    /// Deletes faces. Deleting a face that is already gone is not an error, so every cleanup
    /// can simply be repeated.
    pub async fn delete(&self, face_ids: &[String]) -> Result<(), FaceError> {
        for batch in face_ids.chunks(DELETE_BATCH) {
            self.limiter.acquire().await;
            self.rekognition
                .delete_faces()
                .collection_id(&self.collection_id)
                .set_face_ids(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| FaceError::from_sdk("DeleteFaces", e))?;
        }
        Ok(())
    }
}
