//! DescribeCollection: how many faces, when it was made, by which model.

use serde::{Deserialize, Serialize};

use super::collection_id;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::wire::collection_arn;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub face_count: usize,
    pub face_model_version: String,
    /// Spelled `CollectionARN` here (CreateCollection says `CollectionArn`): Rekognition's own
    /// inconsistency, which the SDK expects.
    #[serde(rename = "CollectionARN")]
    pub collection_arn: String,
    /// Seconds since the Unix epoch, as a number.
    pub creation_timestamp: f64,
    /// Rekognition's users are not supported: always 0.
    pub user_count: u32,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let collection = state.store.get(&id)?;
    Ok(Response {
        face_count: collection.face_count(),
        face_model_version: collection.face_model_version().to_owned(),
        collection_arn: collection_arn(&state.region, &id),
        creation_timestamp: collection.created_at(),
        user_count: 0,
    })
}
