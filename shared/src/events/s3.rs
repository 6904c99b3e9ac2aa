//! S3 event notifications as they arrive on the `uploads` queue.
//!
//! S3 writes the notification JSON straight into the SQS message body (no SNS envelope). Two
//! shapes arrive: the usual `{"Records": [...]}` (parsed with `aws_lambda_events`' [`S3Event`])
//! and, once, when the notification is configured, `{"Event": "s3:TestEvent", ...}`, which
//! carries no object and must be acknowledged and skipped.

use aws_lambda_events::event::s3::S3Event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::objects::{ObjectKeyError, decode_event_key};

/// Why an `uploads` message could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum S3EventError {
    #[error("message body is not an S3 event notification: {source}")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    #[error("S3 event record {index} has no {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("S3 event record {index}: {source}")]
    Key {
        index: usize,
        #[source]
        source: ObjectKeyError,
    },
}

/// The message S3 sends to a destination when a notification configuration is saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3TestEvent {
    pub service: String,
    /// Always `s3:TestEvent`.
    pub event: String,
    pub time: String,
    pub bucket: String,
    pub request_id: String,
    pub host_id: String,
}

/// What one message on the `uploads` queue says.
#[derive(Clone, Debug, PartialEq)]
pub enum S3Notification {
    /// S3 checking that it can deliver: nothing to do, delete the message.
    Test(S3TestEvent),
    /// One or more object events.
    Records(S3Event),
}

/// One object event, with its key decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEvent {
    /// E.g. `ObjectCreated:Put` (S3 writes it without the `s3:` prefix).
    pub event_name: String,
    pub event_time: DateTime<Utc>,
    pub bucket: String,
    /// The object key, decoded: `registrations/zoë user/…jpg`.
    pub key: String,
    pub size: Option<i64>,
    pub etag: Option<String>,
    /// Orders events of the same key: a later event has a greater sequencer.
    pub sequencer: Option<String>,
}

impl ObjectEvent {
    /// Whether the event is about a new object (not a deletion, restore, ...).
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
            || self.event_name.starts_with("s3:ObjectCreated:")
    }
}

impl S3Notification {
    /// Parses an SQS message body from the `uploads` queue.
    pub fn parse(body: &str) -> Result<Self, S3EventError> {
        // Only the test event has a top-level `Event`; look for it before committing to a shape,
        // so a real event's error message is about the real event.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "Event")]
            event: Option<String>,
        }
        let probe: Probe =
            serde_json::from_str(body).map_err(|source| S3EventError::Json { source })?;
        if probe.event.is_some() {
            let test =
                serde_json::from_str(body).map_err(|source| S3EventError::Json { source })?;
            return Ok(Self::Test(test));
        }
        let event = serde_json::from_str(body).map_err(|source| S3EventError::Json { source })?;
        Ok(Self::Records(event))
    }

    /// The object events, keys decoded. A test event has none.
    pub fn objects(&self) -> Result<Vec<ObjectEvent>, S3EventError> {
        let Self::Records(event) = self else {
            return Ok(Vec::new());
        };
        event
            .records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                let missing = |field| S3EventError::MissingField { index, field };
                let object = &record.s3.object;
                let encoded = object
                    .key
                    .as_deref()
                    .ok_or_else(|| missing("s3.object.key"))?;
                Ok(ObjectEvent {
                    event_name: record
                        .event_name
                        .clone()
                        .ok_or_else(|| missing("eventName"))?,
                    event_time: record.event_time,
                    bucket: record
                        .s3
                        .bucket
                        .name
                        .clone()
                        .ok_or_else(|| missing("s3.bucket.name"))?,
                    key: decode_event_key(encoded)
                        .map_err(|source| S3EventError::Key { index, source })?,
                    size: object.size,
                    etag: object.e_tag.clone(),
                    sequencer: object.sequencer.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::RegistrationUpload;

    /// The shape AWS documents ("Event message structure"), with an encoded key.
    const AWS_DOCUMENTED: &str = include_str!("../../tests/fixtures/s3-event-aws-documented.json");
    /// The test event as AWS documents it.
    const AWS_TEST_EVENT: &str =
        include_str!("../../tests/fixtures/s3-test-event-aws-documented.json");
    /// Captured from ministack by `tests/emulator.rs` (registrations/zoë user/<uuid>.jpg).
    const MINISTACK_CAPTURED: &str = include_str!("../../tests/fixtures/s3-event-ministack.json");
    const MINISTACK_TEST_EVENT: &str =
        include_str!("../../tests/fixtures/s3-test-event-ministack.json");

    #[test]
    fn documented_event_decodes_to_a_registration() {
        let notification = S3Notification::parse(AWS_DOCUMENTED).unwrap();
        let objects = notification.objects().unwrap();
        assert_eq!(objects.len(), 1);
        let object = &objects[0];
        assert!(object.is_object_created());
        assert_eq!(object.bucket, "facegate-photos");
        assert_eq!(
            object.key,
            "registrations/zoë user/7f1c9a52-2b8e-4c1e-9a0d-3f5e6d7c8b9a.jpg"
        );
        let upload = RegistrationUpload::parse_key(&object.key).unwrap();
        assert_eq!(upload.user_id.as_str(), "zoë user");
    }

    #[test]
    fn captured_ministack_event_decodes_to_a_registration() {
        let objects = S3Notification::parse(MINISTACK_CAPTURED)
            .unwrap()
            .objects()
            .unwrap();
        let upload = RegistrationUpload::parse_key(&objects[0].key).unwrap();
        assert_eq!(upload.user_id.as_str(), "zoë user");
        assert!(objects[0].is_object_created());
    }

    #[test]
    fn test_events_are_recognised_not_failed() {
        for body in [AWS_TEST_EVENT, MINISTACK_TEST_EVENT] {
            let notification = S3Notification::parse(body).unwrap();
            assert!(matches!(&notification, S3Notification::Test(t) if t.event == "s3:TestEvent"));
            assert!(notification.objects().unwrap().is_empty());
        }
    }

    #[test]
    fn events_round_trip_through_serde() {
        for body in [AWS_DOCUMENTED, MINISTACK_CAPTURED] {
            let S3Notification::Records(event) = S3Notification::parse(body).unwrap() else {
                panic!("not a records event");
            };
            let again: S3Event =
                serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
            assert_eq!(event, again);
        }
        let test: S3TestEvent = serde_json::from_str(AWS_TEST_EVENT).unwrap();
        let again: S3TestEvent =
            serde_json::from_str(&serde_json::to_string(&test).unwrap()).unwrap();
        assert_eq!(test, again);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in ["", "null", "[]", "{\"Records\": 3}", "{\"Records\": [{}]}"] {
            assert!(S3Notification::parse(body).is_err(), "{body:?}");
        }
        let no_key = AWS_DOCUMENTED.replace("\"key\"", "\"notkey\"");
        let err = S3Notification::parse(&no_key)
            .unwrap()
            .objects()
            .unwrap_err();
        assert!(matches!(
            err,
            S3EventError::MissingField {
                field: "s3.object.key",
                ..
            }
        ));
    }
}
