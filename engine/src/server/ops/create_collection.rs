//! CreateCollection: a new, empty, durable collection.

use serde::{Deserialize, Serialize};

use super::collection_id;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::wire::{FACE_MODEL_VERSION, collection_arn};

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    /// Accepted and ignored: the engine keeps no tags.
    pub tags: Option<serde_json::Value>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status_code: u16,
    pub collection_arn: String,
    pub face_model_version: &'static str,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let store = state.store.clone();
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0);
    let name = id.clone();
    tokio::task::spawn_blocking(move || store.create(&name, created_at, FACE_MODEL_VERSION))
        .await??;
    Ok(Response {
        status_code: 200,
        collection_arn: collection_arn(&state.region, &id),
        face_model_version: FACE_MODEL_VERSION,
    })
}
