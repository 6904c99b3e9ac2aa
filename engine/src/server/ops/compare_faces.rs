//! CompareFaces: the largest face of a source image against every face of a target image.

use serde::{Deserialize, Serialize};

use super::threshold;
use crate::face;
use crate::server::EngineState;
use crate::server::error::ApiError;
use crate::server::image::Image;
use crate::server::quality::QualityFilter;
use crate::server::wire::{BoundingBox, FaceDetail};

/// Rekognition's default `SimilarityThreshold`.
pub const DEFAULT_THRESHOLD: f64 = 80.0;
/// Rekognition compares the source face with the 100 largest faces of the target.
const MAX_TARGET_FACES: usize = 100;

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub source_image: Option<Image>,
    pub target_image: Option<Image>,
    pub similarity_threshold: Option<f64>,
    pub quality_filter: Option<String>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub source_image_face: SourceImageFace,
    pub face_matches: Vec<CompareFacesMatch>,
    pub unmatched_faces: Vec<FaceDetail>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct SourceImageFace {
    pub bounding_box: BoundingBox,
    pub confidence: f32,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct CompareFacesMatch {
    pub similarity: f32,
    /// `ComparedFace`: the same fields as a `FaceDetail` here.
    pub face: FaceDetail,
}

pub async fn handle(state: &EngineState, request: Request) -> Result<Response, ApiError> {
    let threshold = threshold(
        request.similarity_threshold,
        "SimilarityThreshold",
        DEFAULT_THRESHOLD,
    )?;
    let filter = QualityFilter::parse(request.quality_filter.as_deref(), QualityFilter::None)?;
    // Both images at once: two pipeline workers.
    let (source, target) = tokio::join!(
        state
            .images
            .analyze(request.source_image.as_ref(), "SourceImage"),
        state
            .images
            .analyze(request.target_image.as_ref(), "TargetImage"),
    );
    let (source, target) = (source?, target?);
    let source_face = source
        .faces
        .iter()
        .find(|f| filter.reasons(f, source.width, source.height).is_empty())
        .ok_or_else(|| {
            ApiError::invalid("There are no faces in the source image. Should be at least 1.")
        })?;

    let mut face_matches = Vec::new();
    let mut unmatched_faces = Vec::new();
    let target_faces = target
        .faces
        .iter()
        .filter(|f| filter.reasons(f, target.width, target.height).is_empty())
        .take(MAX_TARGET_FACES);
    for face in target_faces {
        let similarity = face::similarity(&source_face.embedding, &face.embedding);
        if similarity >= threshold {
            face_matches.push(CompareFacesMatch {
                similarity,
                face: face.into(),
            });
        } else {
            unmatched_faces.push(face.into());
        }
    }
    face_matches.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    Ok(Response {
        source_image_face: SourceImageFace {
            bounding_box: source_face.bounding_box.into(),
            confidence: source_face.confidence,
        },
        face_matches,
        unmatched_faces,
    })
}
