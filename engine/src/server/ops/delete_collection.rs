//! DeleteCollection: the collection and every face in it, gone.

use serde::{Deserialize, Serialize};

use super::collection_id;
use crate::server::EngineState;
use crate::server::error::ApiError;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status_code: u16,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.delete(&id)).await??;
    Ok(Response { status_code: 200 })
}
