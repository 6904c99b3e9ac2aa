//! DetectFaces: every face of an image with its measures.

use serde::{Deserialize, Serialize};

use super::index_faces::check_attributes;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::image::Image;
use crate::server::wire::FaceDetail;

/// Rekognition reports at most 100 faces (the largest).
const MAX_FACES: usize = 100;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub image: Option<Image>,
    /// DEFAULT or ALL (or single attributes): the same measures are reported for each, since
    /// the models estimate no age, emotions, ...
    pub attributes: Option<Vec<String>>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub face_details: Vec<FaceDetail>,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    check_attributes(request.attributes.as_deref(), "Attributes")?;
    let analysis = state
        .images
        .analyze(request.image.as_ref(), "Image")
        .await?;
    Ok(Response {
        face_details: analysis
            .faces
            .iter()
            .take(MAX_FACES)
            .map(FaceDetail::from)
            .collect(),
    })
}
