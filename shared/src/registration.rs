//! The registration record: one registration photo and its way through the pipeline,
//! PENDING -> INDEXED -> ACTIVE, or REJECTED (with reasons), or FAILED; an ACTIVE registration
//! (or an INDEXED one that arrives late) becomes REPLACED when a newer one of the same user wins.
//!
//! The record is what `GET /v1/registrations/<user_id>` shows (its JSON form) and what the
//! `registrations` table holds (its DynamoDB item, [`RegistrationRecord::to_item`] and
//! [`RegistrationRecord::from_item`]; attribute names in [`crate::tables::registrations`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{IdError, UploadId, UserId};
use crate::quality::QualityIssue;
use crate::tables::registrations as attr;

/// Where a registration is. Written with conditions so it never goes backwards
/// ([`RegistrationState::can_become`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegistrationState {
    /// The upload was seen; indexing has not finished.
    Pending,
    /// The face is in the collection; dedup-search has not finished.
    Indexed,
    /// The face signs in.
    Active,
    /// A final refusal, with every reason found (never retried).
    Rejected { reasons: Vec<RejectionReason> },
    /// Processing gave up (the message reached the dead-letter queue), with what went wrong.
    Failed { detail: String },
    /// A newer registration of the same user signs in instead; this one's face is deleted.
    /// Final: a user has one ACTIVE registration at most, the newest by `created_at`.
    Replaced { by_upload_id: UploadId },
}

/// Why a registration was refused. On the wire, a kebab-case code (`too-large`, `no-face`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionReason {
    /// The object is not a JPEG or PNG image.
    NotAnImage,
    TooLarge,
    /// The key is not `registrations/<user_id>/<upload_id>.<ext>`.
    InvalidKey,
    /// The face matches another user's registered face.
    Duplicate,
    #[serde(untagged)]
    Quality(QualityIssue),
}

impl RegistrationState {
    /// The code stored in the `state` attribute.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Indexed => "INDEXED",
            Self::Active => "ACTIVE",
            Self::Rejected { .. } => "REJECTED",
            Self::Failed { .. } => "FAILED",
            Self::Replaced { .. } => "REPLACED",
        }
    }

    /// ACTIVE, REJECTED, FAILED and REPLACED are final.
    pub fn is_final(&self) -> bool {
        self.rank() == 2
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Indexed => 1,
            Self::Active | Self::Rejected { .. } | Self::Failed { .. } | Self::Replaced { .. } => 2,
        }
    }

    /// Whether moving from `self` to `next` goes forward. A final state never changes (a
    /// redelivered message finds the work done); a registration may skip INDEXED (rejected by
    /// the quality gate). The one move between final states: ACTIVE -> REPLACED, when a newer
    /// registration of the same user becomes ACTIVE.
    pub fn can_become(&self, next: &RegistrationState) -> bool {
        self.rank() < next.rank() || matches!((self, next), (Self::Active, Self::Replaced { .. }))
    }

    /// The codes of the states `next` may be written over, for a DynamoDB condition
    /// (`attribute_not_exists(state) OR state IN (...)`).
    pub fn predecessors(next: &RegistrationState) -> Vec<&'static str> {
        [Self::Pending, Self::Indexed, Self::Active]
            .into_iter()
            .filter(|s| s.can_become(next))
            .map(|s| s.code())
            .collect()
    }
}

/// A match with another user's face, found by dedup-search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateMatch {
    pub user_id: UserId,
    pub face_id: String,
    pub similarity: f32,
}

/// One registration photo and its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub user_id: UserId,
    pub upload_id: UploadId,
    #[serde(flatten)]
    pub state: RegistrationState,
    /// Set once indexed; kept on a rejected duplicate for the audit (the face itself is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_id: Option<String>,
    pub bucket: String,
    pub key: String,
    /// Set when dedup-search found another user's face: REJECTED (duplicate) or, when the
    /// policy only flags duplicates, ACTIVE with this set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<DuplicateMatch>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a DynamoDB item is not a registration record.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("registration item has no {attribute} attribute of type {expected}")]
    Missing {
        attribute: &'static str,
        expected: &'static str,
    },
    #[error("registration item attribute {attribute} has an invalid value {value:?}")]
    Invalid {
        attribute: &'static str,
        value: String,
    },
    #[error("registration item: {0}")]
    Id(#[from] IdError),
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Serde spelling of a unit-like enum value (`"no-face"`), so item and JSON agree.
fn reason_code(reason: &RejectionReason) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(code)) => code,
        // Unit variants always serialise to a string; keep a readable fallback regardless.
        _ => format!("{reason:?}"),
    }
}

impl RegistrationRecord {
    /// A new PENDING record for an upload.
    pub fn pending(
        user_id: UserId,
        upload_id: UploadId,
        bucket: String,
        key: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            user_id,
            upload_id,
            state: RegistrationState::Pending,
            face_id: None,
            bucket,
            key,
            duplicate_of: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The DynamoDB item. Times are RFC 3339 strings (they sort as they read).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (attr::USER_ID.to_string(), s(self.user_id.as_str())),
            (attr::UPLOAD_ID.to_string(), s(self.upload_id.as_str())),
            (attr::STATE.to_string(), s(self.state.code())),
            (attr::BUCKET.to_string(), s(&self.bucket)),
            (attr::KEY.to_string(), s(&self.key)),
            (
                attr::CREATED_AT.to_string(),
                s(self.created_at.to_rfc3339()),
            ),
            (
                attr::UPDATED_AT.to_string(),
                s(self.updated_at.to_rfc3339()),
            ),
        ]);
        match &self.state {
            RegistrationState::Rejected { reasons } => {
                let codes = reasons.iter().map(|r| s(reason_code(r))).collect();
                item.insert(attr::REASONS.into(), AttributeValue::L(codes));
            }
            RegistrationState::Failed { detail } => {
                item.insert(attr::DETAIL.into(), s(detail));
            }
            RegistrationState::Replaced { by_upload_id } => {
                item.insert(attr::REPLACED_BY.into(), s(by_upload_id.as_str()));
            }
            _ => {}
        }
        if let Some(face_id) = &self.face_id {
            item.insert(attr::FACE_ID.into(), s(face_id));
        }
        if let Some(duplicate) = &self.duplicate_of {
            item.insert(
                attr::DUPLICATE_OF_USER.into(),
                s(duplicate.user_id.as_str()),
            );
            item.insert(attr::DUPLICATE_OF_FACE.into(), s(&duplicate.face_id));
            item.insert(
                attr::DUPLICATE_SIMILARITY.into(),
                AttributeValue::N(duplicate.similarity.to_string()),
            );
        }
        item
    }

    /// Reads an item written by [`to_item`](Self::to_item).
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Self, ItemError> {
        let string = |attribute: &'static str| -> Result<String, ItemError> {
            match item.get(attribute) {
                Some(AttributeValue::S(value)) => Ok(value.clone()),
                _ => Err(ItemError::Missing {
                    attribute,
                    expected: "S",
                }),
            }
        };
        let optional = |attribute: &'static str| match item.get(attribute) {
            Some(AttributeValue::S(value)) => Some(value.clone()),
            _ => None,
        };
        let time = |attribute: &'static str| -> Result<DateTime<Utc>, ItemError> {
            let value = string(attribute)?;
            DateTime::parse_from_rfc3339(&value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ItemError::Invalid { attribute, value })
        };
        let state = match string(attr::STATE)?.as_str() {
            "PENDING" => RegistrationState::Pending,
            "INDEXED" => RegistrationState::Indexed,
            "ACTIVE" => RegistrationState::Active,
            "REJECTED" => {
                let Some(AttributeValue::L(codes)) = item.get(attr::REASONS) else {
                    return Err(ItemError::Missing {
                        attribute: attr::REASONS,
                        expected: "L",
                    });
                };
                let reasons = codes
                    .iter()
                    .map(|code| {
                        let code = code.as_s().map(String::as_str).unwrap_or_default();
                        serde_json::from_value(code.into()).map_err(|_| ItemError::Invalid {
                            attribute: attr::REASONS,
                            value: code.into(),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                RegistrationState::Rejected { reasons }
            }
            "FAILED" => RegistrationState::Failed {
                detail: string(attr::DETAIL)?,
            },
            "REPLACED" => RegistrationState::Replaced {
                by_upload_id: UploadId::parse(string(attr::REPLACED_BY)?)?,
            },
            other => {
                return Err(ItemError::Invalid {
                    attribute: attr::STATE,
                    value: other.into(),
                });
            }
        };
        let duplicate_of = match optional(attr::DUPLICATE_OF_USER) {
            None => None,
            Some(user) => {
                let similarity = match item.get(attr::DUPLICATE_SIMILARITY) {
                    Some(AttributeValue::N(n)) => n.parse().map_err(|_| ItemError::Invalid {
                        attribute: attr::DUPLICATE_SIMILARITY,
                        value: n.clone(),
                    })?,
                    _ => {
                        return Err(ItemError::Missing {
                            attribute: attr::DUPLICATE_SIMILARITY,
                            expected: "N",
                        });
                    }
                };
                Some(DuplicateMatch {
                    user_id: UserId::parse(user)?,
                    face_id: string(attr::DUPLICATE_OF_FACE)?,
                    similarity,
                })
            }
        };
        Ok(Self {
            user_id: UserId::parse(string(attr::USER_ID)?)?,
            upload_id: UploadId::parse(string(attr::UPLOAD_ID)?)?,
            state,
            face_id: optional(attr::FACE_ID),
            bucket: string(attr::BUCKET)?,
            key: string(attr::KEY)?,
            duplicate_of,
            created_at: time(attr::CREATED_AT)?,
            updated_at: time(attr::UPDATED_AT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: RegistrationState) -> RegistrationRecord {
        let now: DateTime<Utc> = "2026-11-21T12:00:00.123Z".parse().unwrap();
        RegistrationRecord {
            state,
            face_id: Some("11111111-2222-3333-4444-555555555555".into()),
            updated_at: now + chrono::Duration::seconds(3),
            ..RegistrationRecord::pending(
                UserId::parse("zoë user").unwrap(),
                UploadId::parse("u-1").unwrap(),
                "facegate-photos".into(),
                "registrations/zoë user/u-1.jpg".into(),
                now,
            )
        }
    }

    fn every_state() -> Vec<RegistrationRecord> {
        vec![
            record(RegistrationState::Pending),
            record(RegistrationState::Indexed),
            record(RegistrationState::Active),
            record(RegistrationState::Rejected {
                reasons: vec![
                    RejectionReason::Quality(QualityIssue::Blurry),
                    RejectionReason::Quality(QualityIssue::TooDark),
                ],
            }),
            RegistrationRecord {
                duplicate_of: Some(DuplicateMatch {
                    user_id: UserId::parse("mallory").unwrap(),
                    face_id: "f-2".into(),
                    similarity: 99.25,
                }),
                ..record(RegistrationState::Rejected {
                    reasons: vec![RejectionReason::Duplicate],
                })
            },
            record(RegistrationState::Failed {
                detail: "dead-lettered after 5 receives".into(),
            }),
            record(RegistrationState::Replaced {
                by_upload_id: UploadId::parse("u-2").unwrap(),
            }),
        ]
    }

    #[test]
    fn every_state_round_trips_through_json_and_dynamodb() {
        for record in every_state() {
            let json = serde_json::to_string(&record).unwrap();
            assert_eq!(
                serde_json::from_str::<RegistrationRecord>(&json).unwrap(),
                record,
                "{json}"
            );
            assert_eq!(
                RegistrationRecord::from_item(&record.to_item()).unwrap(),
                record
            );
        }
    }

    #[test]
    fn the_json_shape_is_flat() {
        let json = serde_json::to_value(&every_state()[3]).unwrap();
        assert_eq!(json["state"], "REJECTED");
        assert_eq!(json["reasons"], serde_json::json!(["blurry", "too-dark"]));
        assert_eq!(json["user_id"], "zoë user");
    }

    #[test]
    fn states_only_move_forward() {
        use RegistrationState::*;
        let rejected = Rejected {
            reasons: vec![RejectionReason::NotAnImage],
        };
        assert!(Pending.can_become(&Indexed));
        assert!(Pending.can_become(&rejected));
        assert!(Indexed.can_become(&Active));
        assert!(!Active.can_become(&Indexed));
        assert!(!Active.can_become(&rejected));
        assert!(!Indexed.can_become(&Indexed));
        assert_eq!(
            RegistrationState::predecessors(&Active),
            vec!["PENDING", "INDEXED"]
        );
        assert_eq!(RegistrationState::predecessors(&Indexed), vec!["PENDING"]);
        // Replacement is the one move out of a final state, and only out of ACTIVE.
        let replaced = Replaced {
            by_upload_id: UploadId::parse("u-2").unwrap(),
        };
        assert!(replaced.is_final());
        assert!(Active.can_become(&replaced));
        assert!(Indexed.can_become(&replaced));
        assert!(!rejected.can_become(&replaced));
        assert!(!replaced.can_become(&Active));
        assert_eq!(
            RegistrationState::predecessors(&replaced),
            vec!["PENDING", "INDEXED", "ACTIVE"]
        );
        assert_eq!(replaced.code(), "REPLACED");
    }

    #[test]
    fn broken_items_are_errors() {
        let mut item = every_state()[0].to_item();
        item.insert(attr::STATE.into(), s("HALF_DONE"));
        assert!(matches!(
            RegistrationRecord::from_item(&item),
            Err(ItemError::Invalid { .. })
        ));
        item.remove(attr::STATE);
        assert!(matches!(
            RegistrationRecord::from_item(&item),
            Err(ItemError::Missing { .. })
        ));
        let mut item = every_state()[0].to_item();
        item.insert(attr::USER_ID.into(), s("../etc"));
        assert!(matches!(
            RegistrationRecord::from_item(&item),
            Err(ItemError::Id(_))
        ));
    }
}
