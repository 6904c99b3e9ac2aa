//! Rekognition's JSON shapes that several operations share, built from the pipeline's types.
//!
//! Field names are exactly Rekognition's, so `aws-sdk-rekognition` reads them. Geometry is in
//! ratios of the image, angles in degrees, scores 0-100, as in Rekognition.

use serde::Serialize;
use uuid::Uuid;

use crate::collection::FaceEntry;
use crate::face;

/// The version string reported as `FaceModelVersion`: the two models the pipeline runs.
pub const FACE_MODEL_VERSION: &str = "facegate-yunet-2023mar-sface-2021dec";

#[derive(Serialize, Debug, Clone, Copy)]
#[serde(rename_all = "PascalCase")]
pub struct BoundingBox {
    pub width: f32,
    pub height: f32,
    pub left: f32,
    pub top: f32,
}

impl From<face::BoundingBox> for BoundingBox {
    fn from(b: face::BoundingBox) -> Self {
        BoundingBox {
            width: b.width,
            height: b.height,
            left: b.left,
            top: b.top,
        }
    }
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Landmark {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub x: f32,
    pub y: f32,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Pose {
    pub roll: f32,
    pub yaw: f32,
    pub pitch: f32,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ImageQuality {
    pub brightness: f32,
    pub sharpness: f32,
}

/// `FaceDetail` (DetectFaces, IndexFaces) and `ComparedFace` (CompareFaces): what the pipeline
/// measures. Attributes the models cannot estimate (age, emotions, ...) are left out, never made
/// up, even when `ALL` is asked for.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct FaceDetail {
    pub bounding_box: BoundingBox,
    pub confidence: f32,
    pub landmarks: Vec<Landmark>,
    pub pose: Pose,
    pub quality: ImageQuality,
}

/// Rekognition's names of the five landmarks, in the pipeline's order.
const LANDMARK_TYPES: [&str; 5] = ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"];

impl From<&face::Face> for FaceDetail {
    fn from(f: &face::Face) -> Self {
        FaceDetail {
            bounding_box: f.bounding_box.into(),
            confidence: f.confidence,
            landmarks: LANDMARK_TYPES
                .iter()
                .zip(&f.landmarks)
                .map(|(kind, l)| Landmark {
                    kind,
                    x: l.x,
                    y: l.y,
                })
                .collect(),
            pose: Pose {
                roll: f.pose.roll,
                yaw: f.pose.yaw,
                pitch: f.pose.pitch,
            },
            quality: ImageQuality {
                brightness: f.quality.brightness,
                sharpness: f.quality.sharpness,
            },
        }
    }
}

/// A face stored in a collection (`Face` in Rekognition).
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Face {
    pub face_id: Uuid,
    pub bounding_box: BoundingBox,
    pub image_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_image_id: Option<String>,
    pub confidence: f32,
    pub index_faces_model_version: &'static str,
}

impl From<FaceEntry> for Face {
    fn from(f: FaceEntry) -> Self {
        Face {
            face_id: f.face_id,
            bounding_box: f.bounding_box.into(),
            image_id: f.image_id,
            external_image_id: f.external_image_id,
            confidence: f.confidence,
            index_faces_model_version: FACE_MODEL_VERSION,
        }
    }
}

/// A collection face that matched (SearchFaces, SearchFacesByImage).
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct FaceMatch {
    pub similarity: f32,
    pub face: Face,
}

/// The ARN Rekognition would give the collection (account 000000000000: there is none).
pub fn collection_arn(region: &str, collection_id: &str) -> String {
    format!("aws:rekognition:{region}:000000000000:collection/{collection_id}")
}
