//! SearchFaces: the faces of a collection that match one of its faces (given by FaceId).
//!
//! Also home of [`find_matches`], the search both search operations share.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded, collection_id, cosine_floor, face_id, threshold};
use crate::collection::Collection;
use crate::face::{self, Embedding};
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::wire::{FACE_MODEL_VERSION, FaceMatch};

/// Rekognition's default `FaceMatchThreshold`.
pub const DEFAULT_THRESHOLD: f64 = 80.0;
/// Rekognition's upper bound for `MaxFaces`, used when it is not given: every match above
/// the threshold comes back, which is what a duplicate check wants.
pub const MAX_FACES: i64 = 4096;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    pub face_id: Option<String>,
    pub max_faces: Option<i64>,
    pub face_match_threshold: Option<f64>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub searched_face_id: Uuid,
    pub face_matches: Vec<FaceMatch>,
    pub face_model_version: &'static str,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let searched = face_id(
        request
            .face_id
            .as_deref()
            .ok_or_else(|| ApiError::invalid("FaceId is required"))?,
        "FaceId",
    )?;
    let limit = bounded(request.max_faces, "MaxFaces", 1, MAX_FACES, MAX_FACES)?;
    let threshold = threshold(
        request.face_match_threshold,
        "FaceMatchThreshold",
        DEFAULT_THRESHOLD,
    )?;
    let collection = state.store.get(&id)?;
    let (_, embedding) = collection.embedding(&searched).ok_or_else(|| {
        ApiError::invalid(format!(
            "FaceId {searched} does not exist in collection {id}"
        ))
    })?;
    let face_matches =
        find_matches(collection, embedding, limit, threshold, Some(searched)).await?;
    Ok(Response {
        searched_face_id: searched,
        face_matches,
        face_model_version: FACE_MODEL_VERSION,
    })
}

/// The (at most `limit`) faces of `collection` whose similarity to `query` reaches
/// `threshold`, best first; `exclude` is never returned.
pub async fn find_matches(
    collection: Arc<Collection>,
    query: Embedding,
    limit: usize,
    threshold: f32,
    exclude: Option<Uuid>,
) -> Result<Vec<FaceMatch>, ApiError> {
    // A million faces take milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || {
        let hits = collection.search(&query, limit, cosine_floor(threshold), exclude);
        hits.into_iter()
            .map(|hit| (face::similarity(&query, &hit.embedding), hit.face))
            .filter(|(similarity, _)| *similarity >= threshold)
            .map(|(similarity, face)| FaceMatch {
                similarity,
                face: face.into(),
            })
            .collect()
    })
    .await?;
    Ok(matches)
}
