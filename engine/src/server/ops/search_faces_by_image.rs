//! SearchFacesByImage: the faces of a collection that match the largest face of an image.

use serde::{Deserialize, Serialize};

use super::search_faces::{DEFAULT_THRESHOLD, MAX_FACES, find_matches};
use super::{bounded, collection_id, threshold};
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::image::Image;
use crate::server::quality::QualityFilter;
use crate::server::wire::{BoundingBox, FACE_MODEL_VERSION, FaceMatch};

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    pub image: Option<Image>,
    pub max_faces: Option<i64>,
    pub face_match_threshold: Option<f64>,
    pub quality_filter: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub searched_face_bounding_box: BoundingBox,
    pub searched_face_confidence: f32,
    pub face_matches: Vec<FaceMatch>,
    pub face_model_version: &'static str,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let limit = bounded(request.max_faces, "MaxFaces", 1, MAX_FACES, MAX_FACES)?;
    let threshold = threshold(
        request.face_match_threshold,
        "FaceMatchThreshold",
        DEFAULT_THRESHOLD,
    )?;
    let filter = QualityFilter::parse(request.quality_filter.as_deref(), QualityFilter::None)?;
    let collection = state.store.get(&id)?;
    let analysis = state
        .images
        .analyze(request.image.as_ref(), "Image")
        .await?;
    // Faces come largest first: Rekognition searches with the largest.
    let face = analysis.faces.first().ok_or_else(|| {
        ApiError::invalid("There are no faces in the image. Should be at least 1.")
    })?;
    let reasons = filter.reasons(face, analysis.width, analysis.height);
    if !reasons.is_empty() {
        return Err(ApiError::invalid(format!(
            "The largest face in the image does not pass the quality filter: {}",
            reasons.join(", ")
        )));
    }
    let face_matches =
        find_matches(collection, face.embedding.clone(), limit, threshold, None).await?;
    Ok(Response {
        searched_face_bounding_box: face.bounding_box.into(),
        searched_face_confidence: face.confidence,
        face_matches,
        face_model_version: FACE_MODEL_VERSION,
    })
}
