//! ListCollections: collection ids in order, a page at a time.

use serde::{Deserialize, Serialize};

use super::bounded;
use crate::collection::page;
use crate::server::EngineState;
use crate::server::error::ApiError;

/// What a ListCollections token pages through.
const SCOPE: &str = "collections";

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub collection_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// The face model of each collection, in the same order.
    pub face_model_versions: Vec<String>,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let limit = bounded(request.max_results, "MaxResults", 0, 4096, 1000)?;
    let after = match &request.next_token {
        Some(token) => Some(
            page::decode(SCOPE, token)
                .map_err(|e| ApiError::InvalidPaginationToken(format!("NextToken: {e}")))?,
        ),
        None => None,
    };
    let (collections, more) = state.store.list(after.as_deref(), limit);
    let next_token = match collections.last() {
        Some(last) if more => Some(page::encode(SCOPE, last.id())),
        _ => None,
    };
    Ok(Response {
        collection_ids: collections.iter().map(|c| c.id().to_owned()).collect(),
        face_model_versions: collections
            .iter()
            .map(|c| c.face_model_version().to_owned())
            .collect(),
        next_token,
    })
}
