//! ListFaces: the faces of a collection, ordered by FaceId, a page at a time.

use serde::{Deserialize, Serialize};

use super::{bounded, collection_id, face_id};
use crate::collection::page;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::wire::{FACE_MODEL_VERSION, Face};

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
    /// Only these faces (those that exist).
    pub face_ids: Option<Vec<String>>,
    /// Rekognition's users are not supported.
    pub user_id: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub faces: Vec<Face>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub face_model_version: &'static str,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let limit = bounded(request.max_results, "MaxResults", 0, 4096, 1000)?;
    if request.user_id.is_some() {
        return Err(ApiError::invalid(
            "UserId: users are not supported by the facegate engine",
        ));
    }
    let collection = state.store.get(&id)?;
    if let Some(ids) = request.face_ids {
        let mut faces = Vec::new();
        for value in &ids {
            if let Some((entry, _)) = collection.embedding(&face_id(value, "FaceIds")?) {
                faces.push(Face::from(entry));
            }
        }
        return Ok(Response {
            faces,
            next_token: None,
            face_model_version: FACE_MODEL_VERSION,
        });
    }
    // Tokens are per collection: one from another collection is refused.
    let scope = format!("faces/{id}");
    let invalid_token =
        || ApiError::InvalidPaginationToken("NextToken: invalid pagination token".into());
    let after = match &request.next_token {
        Some(token) => {
            let key = page::decode(&scope, token).map_err(|_| invalid_token())?;
            Some(face_id(&key, "NextToken").map_err(|_| invalid_token())?)
        }
        None => None,
    };
    let (page, more) = collection.list_faces(after, limit);
    let next_token = match page.last() {
        Some(last) if more => Some(page::encode(&scope, &last.face_id.to_string())),
        _ => None,
    };
    Ok(Response {
        faces: page.into_iter().map(Face::from).collect(),
        next_token,
        face_model_version: FACE_MODEL_VERSION,
    })
}
