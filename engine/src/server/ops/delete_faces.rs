//! DeleteFaces: remove faces from a collection (tombstones in its log).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{collection_id, face_id};
use crate::server::EngineState;
use crate::server::error::ApiError;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub collection_id: Option<String>,
    pub face_ids: Option<Vec<String>>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub deleted_faces: Vec<Uuid>,
    pub unsuccessful_face_deletions: Vec<UnsuccessfulFaceDeletion>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct UnsuccessfulFaceDeletion {
    pub face_id: Uuid,
    pub reasons: Vec<&'static str>,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let id = collection_id(request.collection_id)?;
    let values = request.face_ids.unwrap_or_default();
    if values.is_empty() || values.len() > 4096 {
        return Err(ApiError::invalid("FaceIds must hold 1 to 4096 face ids"));
    }
    let ids = values
        .iter()
        .map(|v| face_id(v, "FaceIds"))
        .collect::<Result<Vec<Uuid>, _>>()?;
    let collection = state.store.get(&id)?;
    let wanted = ids.clone();
    let deleted_faces =
        tokio::task::spawn_blocking(move || collection.delete_faces(&wanted)).await??;
    let mut unsuccessful_face_deletions: Vec<UnsuccessfulFaceDeletion> = Vec::new();
    for face_id in ids {
        if !deleted_faces.contains(&face_id)
            && !unsuccessful_face_deletions
                .iter()
                .any(|u| u.face_id == face_id)
        {
            unsuccessful_face_deletions.push(UnsuccessfulFaceDeletion {
                face_id,
                reasons: vec!["FACE_NOT_FOUND"],
            });
        }
    }
    Ok(Response {
        deleted_faces,
        unsuccessful_face_deletions,
    })
}
