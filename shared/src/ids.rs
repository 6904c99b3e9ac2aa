//! The identifiers of the domain: who registers ([`UserId`]), which photo ([`UploadId`]) and
//! which sign-in attempt ([`ChallengeId`]).
//!
//! Each is parsed once, at the edge (an S3 key, a Cognito event, an HTTP path), and is valid
//! from then on: code that holds a `UserId` never re-checks it. They all end up inside S3 keys
//! and DynamoDB keys, so none may contain `/`, a control character or a `..` path step.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {problem}")]
pub struct IdError {
    /// Which identifier was being parsed (`user id`, `upload id`, ...).
    pub kind: &'static str,
    /// The refused input, for the log.
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// A user, as Cognito and the app name them: an e-mail address, a username, `zoë user`.
///
/// Letters and digits of any script, spaces inside, and `. _ - @ +`; 1 to 128 characters;
/// no `..`, no leading `.`, no leading or trailing space. Compared byte for byte (no Unicode
/// normalisation: the app must send the same spelling at registration and at sign-in).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let fail = |problem| {
            Err(IdError {
                kind: "user id",
                value: value.clone(),
                problem,
            })
        };
        let chars = value.chars().count();
        if chars == 0 {
            return fail("is empty");
        }
        if chars > Self::MAX_CHARS {
            return fail("is longer than 128 characters");
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-' | '@' | '+')))
        {
            return match bad {
                '/' | '\\' => fail("contains a path separator"),
                c if c.is_control() => fail("contains a control character"),
                _ => fail("contains a character outside letters, digits, space and . _ - @ +"),
            };
        }
        if value.contains("..") || value.starts_with('.') {
            return fail("contains `..` or starts with `.`");
        }
        if value.starts_with(' ') || value.ends_with(' ') {
            return fail("starts or ends with a space");
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One registration photo, chosen by the app (typically a UUID).
///
/// ASCII letters, digits, `_` and `-`, 1 to 64 characters: it is safe in an S3 key, a
/// DynamoDB key and Rekognition's `ExternalImageId` (`[a-zA-Z0-9_.\-:]+`) as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

/// One sign-in challenge, issued by the verifier (a UUID in practice). Same alphabet as
/// [`UploadId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChallengeId(String);

/// The device a sign-in came from, as the client names it (`clientMetadata.deviceId`: the
/// sign-in page keeps a random one per browser). Same alphabet as [`UploadId`].
///
/// It is the client's own claim: it limits a careless or honest device, and an attacker
/// who rotates it still meets the per-source limit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Shared rule of the token-like ids: short, ASCII, no punctuation beyond `_` and `-`.
fn parse_token(kind: &'static str, value: String) -> Result<String, IdError> {
    let problem = if value.is_empty() {
        Some("is empty")
    } else if value.len() > 64 {
        Some("is longer than 64 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("may only contain ASCII letters, digits, `_` and `-`")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(IdError {
            kind,
            value,
            problem,
        }),
        None => Ok(value),
    }
}

impl UploadId {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        parse_token("upload id", value.into()).map(Self)
    }

    /// A fresh random id: a UUID v4, hyphenated.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ChallengeId {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        parse_token("challenge id", value.into()).map(Self)
    }

    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DeviceId {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        parse_token("device id", value.into()).map(Self)
    }

    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Display`, `TryFrom<String>` (used by serde) and `From<Id> for String` for each id.
macro_rules! string_id {
    ($($id:ident),*) => {$(
        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $id {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }
        impl std::str::FromStr for $id {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
    )*};
}
string_id!(UserId, UploadId, ChallengeId, DeviceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_allow_every_script_and_inner_spaces() {
        for ok in [
            "zoë user",
            "alice@example.com",
            "Łukasz_2",
            "山田",
            "a+b-c.d",
        ] {
            assert_eq!(UserId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn user_ids_refuse_paths_and_oddities() {
        let too_long = "x".repeat(129);
        for bad in [
            "",
            "..",
            "a..b",
            ".hidden",
            "a/b",
            "a\\b",
            " lead",
            "trail ",
            "tab\there",
            "semi;colon",
            &too_long,
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn token_ids_are_ascii_only() {
        assert!(UploadId::parse("0b7c2d4e-9f1a-4c55-8d2e-1f2a3b4c5d6e").is_ok());
        assert!(UploadId::parse(UploadId::random().as_str()).is_ok());
        for bad in ["", "a.b", "a/b", "é", &"x".repeat(65)] {
            assert!(UploadId::parse(bad).is_err(), "{bad:?} should be refused");
            assert!(
                ChallengeId::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn serde_parses_on_the_way_in() {
        let id: UserId = serde_json::from_str("\"zoë user\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"zoë user\"");
        assert!(serde_json::from_str::<UserId>("\"../etc\"").is_err());
    }
}
