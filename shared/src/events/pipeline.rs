//! `FaceIndexed`: the indexer's word that a registration photo's face is in the collection,
//! published on the `pipeline` topic and consumed by dedup-search from the `dedup` queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Topic;
use crate::events::sns::Publishable;
use crate::ids::{UploadId, UserId};

/// A face was indexed for a registration; dedup-search decides whether it becomes ACTIVE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceIndexed {
    pub user_id: UserId,
    pub upload_id: UploadId,
    /// Rekognition's id of the new face.
    pub face_id: String,
    pub collection_id: String,
    /// Where the registration photo is.
    pub bucket: String,
    pub key: String,
    pub indexed_at: DateTime<Utc>,
}

impl Publishable for FaceIndexed {
    const TOPIC: Topic = Topic::Pipeline;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sns::Notification;

    #[test]
    fn round_trips_and_reads_its_documented_shape() {
        let json = r#"{
            "user_id": "zoë user",
            "upload_id": "7f1c9a52-2b8e-4c1e-9a0d-3f5e6d7c8b9a",
            "face_id": "11111111-2222-3333-4444-555555555555",
            "collection_id": "facegate-faces",
            "bucket": "facegate-photos",
            "key": "registrations/zoë user/7f1c9a52-2b8e-4c1e-9a0d-3f5e6d7c8b9a.jpg",
            "indexed_at": "2026-11-21T12:00:00Z"
        }"#;
        let event: FaceIndexed = serde_json::from_str(json).unwrap();
        assert_eq!(event.user_id.as_str(), "zoë user");
        let again: FaceIndexed =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(event, again);
        // A bad user id is refused while parsing, not later.
        assert!(
            serde_json::from_str::<FaceIndexed>(&json.replace("zoë user\"", "../x\"")).is_err()
        );
    }

    #[test]
    fn arrives_wrapped_in_an_sns_envelope() {
        let body = include_str!("../../tests/fixtures/sns-face-indexed-ministack.json");
        let note = Notification::<FaceIndexed>::parse(body).unwrap();
        assert_eq!(note.event.collection_id, "facegate-faces");
        assert!(note.envelope.topic_arn.ends_with("-pipeline"));
    }
}
