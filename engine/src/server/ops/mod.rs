//! One file per Rekognition operation, and the table that routes a request to it.
//!
//! Each operation file has the operation's `Request` and `Response` (Rekognition's field
//! names) and a `handle` function; this file holds what they share: parameter checks and the
//! cosine a similarity threshold stands for.

pub mod compare_faces;
pub mod create_collection;
pub mod create_face_liveness_session;
pub mod delete_collection;
pub mod delete_faces;
pub mod describe_collection;
pub mod detect_faces;
pub mod get_face_liveness_session_results;
pub mod index_faces;
pub mod list_collections;
pub mod list_faces;
pub mod search_faces;
pub mod search_faces_by_image;

use axum::response::Response;
use uuid::Uuid;

use super::EngineState;
use super::error::ApiError;
use super::protocol::{parse, reply};
use crate::face;

/// The operations this engine answers, for the unsupported-operation message.
pub const SUPPORTED: [&str; 13] = [
    "CompareFaces",
    "CreateCollection",
    "CreateFaceLivenessSession",
    "DeleteCollection",
    "DeleteFaces",
    "DescribeCollection",
    "DetectFaces",
    "GetFaceLivenessSessionResults",
    "IndexFaces",
    "ListCollections",
    "ListFaces",
    "SearchFaces",
    "SearchFacesByImage",
];

/// Run `operation` on a request body.
pub async fn dispatch(
    state: &EngineState,
    operation: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    match operation {
        "CompareFaces" => reply(&compare_faces::handle(state, parse(body)?).await?),
        "CreateCollection" => reply(&create_collection::handle(state, parse(body)?).await?),
        "CreateFaceLivenessSession" => {
            reply(&create_face_liveness_session::handle(state, parse(body)?)?)
        }
        "DeleteCollection" => reply(&delete_collection::handle(state, parse(body)?).await?),
        "DeleteFaces" => reply(&delete_faces::handle(state, parse(body)?).await?),
        "DescribeCollection" => reply(&describe_collection::handle(state, parse(body)?).await?),
        "DetectFaces" => reply(&detect_faces::handle(state, parse(body)?).await?),
        "GetFaceLivenessSessionResults" => {
            reply(&get_face_liveness_session_results::handle(state, parse(body)?).await?)
        }
        "IndexFaces" => reply(&index_faces::handle(state, parse(body)?).await?),
        "ListCollections" => reply(&list_collections::handle(state, parse(body)?).await?),
        "ListFaces" => reply(&list_faces::handle(state, parse(body)?).await?),
        "SearchFaces" => reply(&search_faces::handle(state, parse(body)?).await?),
        "SearchFacesByImage" => reply(&search_faces_by_image::handle(state, parse(body)?).await?),
        other => Err(ApiError::UnknownOperation(format!(
            "RekognitionService.{other} is not supported by the facegate engine (it supports {})",
            SUPPORTED.join(", ")
        ))),
    }
}

/// A `CollectionId`: required, 1-255 of `[a-zA-Z0-9_.\-]`. (`.` and `..` are refused too: a
/// collection is a folder.)
pub fn collection_id(value: Option<String>) -> Result<String, ApiError> {
    let id = value.ok_or_else(|| ApiError::invalid("CollectionId is required"))?;
    let valid_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if id.is_empty() || id.len() > 255 || !valid_chars || id == "." || id == ".." {
        return Err(ApiError::invalid(format!(
            "CollectionId {id:?} must be 1-255 characters of [a-zA-Z0-9_.\\-]"
        )));
    }
    Ok(id)
}

/// A `FaceId`: a UUID.
pub fn face_id(value: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::invalid(format!("{field} {value:?} is not a face id (a UUID)")))
}

/// An optional integer parameter within `min..=max`, or `default`.
pub fn bounded(
    value: Option<i64>,
    field: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<usize, ApiError> {
    let v = value.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(ApiError::invalid(format!(
            "{field} must be between {min} and {max}, got {v}"
        )));
    }
    Ok(v as usize)
}

/// An optional threshold on the 0-100 scale, or `default`.
pub fn threshold(value: Option<f64>, field: &str, default: f64) -> Result<f32, ApiError> {
    let v = value.unwrap_or(default);
    if !(0.0..=100.0).contains(&v) {
        return Err(ApiError::invalid(format!(
            "{field} must be between 0 and 100, got {v}"
        )));
    }
    Ok(v as f32)
}

/// The smallest cosine whose calibrated similarity reaches `threshold`, lowered a little for
/// float rounding: it only prunes the search, and every result is then checked against the
/// threshold with the real [`face::similarity`].
pub fn cosine_floor(threshold: f32) -> f32 {
    face::cosine_for_similarity(threshold) - 1e-4
}
