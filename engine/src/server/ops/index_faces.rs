//! IndexFaces: detect the faces of an image and add the good ones to a collection.
//!
//! Faces are considered largest first. A face that fails the quality filter, or comes after
//! `MaxFaces` good ones, is reported in `UnindexedFaces` with Rekognition's reasons. Every face
//! of one call shares one `ImageId`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded, collection_id};
use crate::collection::NewFace;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::image::Image;
use crate::server::quality::QualityFilter;
use crate::server::wire::{FACE_MODEL_VERSION, Face, FaceDetail};

/// Rekognition's accepted `DetectionAttributes` values. The engine reports the same details
/// for all of them (it cannot estimate age, emotions, ...).
pub const ATTRIBUTES: [&str; 14] = [
    "DEFAULT",
    "ALL",
    "AGE_RANGE",
    "BEARD",
    "EMOTIONS",
    "EYE_DIRECTION",
    "EYEGLASSES",
    "EYES_OPEN",
    "FACE_OCCLUDED",
    "GENDER",
    "MOUTH_OPEN",
    "MUSTACHE",
    "SMILE",
    "SUNGLASSES",
];

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    pub image: Option<Image>,
    pub external_image_id: Option<String>,
    pub detection_attributes: Option<Vec<String>>,
    pub max_faces: Option<i64>,
    pub quality_filter: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub face_records: Vec<FaceRecord>,
    pub face_model_version: &'static str,
    pub unindexed_faces: Vec<UnindexedFace>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct FaceRecord {
    pub face: Face,
    pub face_detail: FaceDetail,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct UnindexedFace {
    pub reasons: Vec<&'static str>,
    pub face_detail: FaceDetail,
}

/// Check `DetectionAttributes` values against Rekognition's list.
pub fn check_attributes(values: Option<&[String]>, field: &str) -> Result<(), ApiError> {
    match values
        .unwrap_or_default()
        .iter()
        .find(|v| !ATTRIBUTES.contains(&v.as_str()))
    {
        Some(bad) => Err(ApiError::invalid(format!(
            "{field} value {bad:?} is not one of {}",
            ATTRIBUTES.join(", ")
        ))),
        None => Ok(()),
    }
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let max_faces = bounded(request.max_faces, "MaxFaces", 1, 100, 100)?;
    let filter = QualityFilter::parse(request.quality_filter.as_deref(), QualityFilter::Auto)?;
    check_attributes(
        request.detection_attributes.as_deref(),
        "DetectionAttributes",
    )?;
    if let Some(external) = &request.external_image_id {
        let valid = external
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b));
        if external.is_empty() || external.len() > 255 || !valid {
            return Err(ApiError::invalid(
                "ExternalImageId must be 1-255 characters of [a-zA-Z0-9_.\\-:]",
            ));
        }
    }
    // Fail fast on a missing collection, before spending the CPU on the image.
    let collection = state.store.get(&id)?;
    let analysis = state
        .images
        .analyze(request.image.as_ref(), "Image")
        .await?;

    let image_id = Uuid::new_v4();
    let mut to_index = Vec::new();
    let mut unindexed_faces = Vec::new();
    for face in &analysis.faces {
        let mut reasons = filter.reasons(face, analysis.width, analysis.height);
        if reasons.is_empty() && to_index.len() == max_faces {
            reasons.push("EXCEEDS_MAX_FACES");
        }
        if reasons.is_empty() {
            to_index.push(face);
        } else {
            unindexed_faces.push(UnindexedFace {
                reasons,
                face_detail: face.into(),
            });
        }
    }

    let new_faces: Vec<NewFace> = to_index
        .iter()
        .map(|face| NewFace {
            image_id,
            external_image_id: request.external_image_id.clone(),
            bounding_box: face.bounding_box,
            confidence: face.confidence,
            embedding: face.embedding.clone(),
        })
        .collect();
    let stored = if new_faces.is_empty() {
        Vec::new()
    } else {
        let collection = collection.clone();
        tokio::task::spawn_blocking(move || collection.add_faces(new_faces)).await??
    };
    let face_records = stored
        .into_iter()
        .zip(to_index)
        .map(|(entry, face)| FaceRecord {
            face: entry.into(),
            face_detail: face.into(),
        })
        .collect();
    Ok(Response {
        face_records,
        face_model_version: FACE_MODEL_VERSION,
        unindexed_faces,
    })
}
