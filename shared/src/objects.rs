//! The S3 object keys of facegate: whose photo an object is, read from its key.
//!
//! Registration photos live at `registrations/<user_id>/<upload_id>.(jpg|jpeg|png)` and sign-in
//! selfies at `signin/<user_id>/<challenge_id>.jpg`. A key is parsed into
//! [`RegistrationUpload`] or [`SigninUpload`]; anything else (another prefix, a nested path,
//! `..`, an unknown extension) is an [`ObjectKeyError`], never a half-valid value. Keys from S3
//! event notifications are form-URL-encoded: decode them with [`decode_event_key`] first.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::config::{REGISTRATIONS_PREFIX, SIGNIN_PREFIX};
use crate::ids::{ChallengeId, IdError, UploadId, UserId};

/// Why an object key does not name a facegate photo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectKeyError {
    #[error("object key {key:?} is not under {prefix:?}")]
    WrongPrefix { key: String, prefix: &'static str },
    #[error("object key {key:?} is not of the form {expected}")]
    Shape { key: String, expected: &'static str },
    #[error("object key {key:?} has extension {extension:?}; expected one of jpg, jpeg, png")]
    Extension { key: String, extension: String },
    #[error("object key {key:?}: {source}")]
    Id {
        key: String,
        #[source]
        source: IdError,
    },
    #[error("event object key {encoded:?} is not valid form-URL-encoded UTF-8")]
    Encoding { encoded: String },
}

/// Decodes a key as S3 writes it into event notifications: form-URL-encoded, so `+` is a
/// space and `%2B` a plus, `%C3%A9` an `é`. Invalid UTF-8 after decoding is an error rather
/// than a lossy replacement, since the result must name the exact object.
pub fn decode_event_key(encoded: &str) -> Result<String, ObjectKeyError> {
    // `+` must become a space *before* percent-decoding, or a literal `%2B` would turn into one.
    let spaced = encoded.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| ObjectKeyError::Encoding {
            encoded: encoded.into(),
        })
}

/// The image formats a registration photo may have, by key extension (lowercase, as written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageExtension {
    Jpg,
    Jpeg,
    Png,
}

impl ImageExtension {
    /// A lowercase extension facegate takes photos in, without its dot.
    pub fn parse(extension: &str) -> Option<Self> {
        match extension {
            "jpg" => Some(Self::Jpg),
            "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpg => "jpg",
            Self::Jpeg => "jpeg",
            Self::Png => "png",
        }
    }

    /// The content type S3 should hold for this extension.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpg | Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }
}

/// A registration photo: `registrations/<user_id>/<upload_id>.<ext>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistrationUpload {
    pub user_id: UserId,
    pub upload_id: UploadId,
    pub extension: ImageExtension,
}

const REGISTRATION_SHAPE: &str = "registrations/<user_id>/<upload_id>.(jpg|jpeg|png)";
const SIGNIN_SHAPE: &str = "signin/<user_id>/<challenge_id>.jpg";

/// Splits `<prefix><user>/<id>.<ext>` into its three parts.
fn split_key<'k>(
    key: &'k str,
    prefix: &'static str,
    expected: &'static str,
) -> Result<(&'k str, &'k str, &'k str), ObjectKeyError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| ObjectKeyError::WrongPrefix {
            key: key.into(),
            prefix,
        })?;
    let shape = || ObjectKeyError::Shape {
        key: key.into(),
        expected,
    };
    let (user, file) = rest.split_once('/').ok_or_else(shape)?;
    let (id, extension) = file.rsplit_once('.').ok_or_else(shape)?;
    Ok((user, id, extension))
}

fn id_error(key: &str) -> impl FnOnce(IdError) -> ObjectKeyError + '_ {
    move |source| ObjectKeyError::Id {
        key: key.into(),
        source,
    }
}

impl RegistrationUpload {
    /// Parses a decoded object key.
    pub fn parse_key(key: &str) -> Result<Self, ObjectKeyError> {
        let (user, upload, extension) = split_key(key, REGISTRATIONS_PREFIX, REGISTRATION_SHAPE)?;
        let extension =
            ImageExtension::parse(extension).ok_or_else(|| ObjectKeyError::Extension {
                key: key.into(),
                extension: extension.into(),
            })?;
        // The ids refuse `/` and `..`, so a nested or escaping path cannot get through.
        Ok(Self {
            user_id: UserId::parse(user).map_err(id_error(key))?,
            upload_id: UploadId::parse(upload).map_err(id_error(key))?,
            extension,
        })
    }

    /// The object key, exactly as [`parse_key`](Self::parse_key) reads it.
    pub fn key(&self) -> String {
        format!(
            "{REGISTRATIONS_PREFIX}{}/{}.{}",
            self.user_id,
            self.upload_id,
            self.extension.as_str()
        )
    }
}

impl fmt::Display for RegistrationUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A sign-in selfie: `signin/<user_id>/<challenge_id>.jpg`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SigninUpload {
    pub user_id: UserId,
    pub challenge_id: ChallengeId,
}

impl SigninUpload {
    pub fn parse_key(key: &str) -> Result<Self, ObjectKeyError> {
        let (user, challenge, extension) = split_key(key, SIGNIN_PREFIX, SIGNIN_SHAPE)?;
        if extension != "jpg" {
            return Err(ObjectKeyError::Shape {
                key: key.into(),
                expected: SIGNIN_SHAPE,
            });
        }
        Ok(Self {
            user_id: UserId::parse(user).map_err(id_error(key))?,
            challenge_id: ChallengeId::parse(challenge).map_err(id_error(key))?,
        })
    }

    pub fn key(&self) -> String {
        format!("{SIGNIN_PREFIX}{}/{}.jpg", self.user_id, self.challenge_id)
    }
}

impl fmt::Display for SigninUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_form_url_decoded() {
        assert_eq!(
            decode_event_key("registrations/zo%C3%AB+user/a.jpg").unwrap(),
            "registrations/zoë user/a.jpg"
        );
        assert_eq!(decode_event_key("a%2Bb+c").unwrap(), "a+b c");
        assert_eq!(
            decode_event_key("registrations%2Fx").unwrap(),
            "registrations/x"
        );
        assert_eq!(
            decode_event_key("caf%C3%A9%20%E5%B1%B1").unwrap(),
            "café 山"
        );
        assert_eq!(decode_event_key("plain/key.png").unwrap(), "plain/key.png");
        assert!(decode_event_key("bad%FF%FE").is_err());
    }

    #[test]
    fn registration_keys_parse_into_their_parts() {
        let upload = RegistrationUpload::parse_key("registrations/zoë user/u-1.jpeg").unwrap();
        assert_eq!(upload.user_id.as_str(), "zoë user");
        assert_eq!(upload.upload_id.as_str(), "u-1");
        assert_eq!(upload.extension, ImageExtension::Jpeg);
        assert_eq!(upload.key(), "registrations/zoë user/u-1.jpeg");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        // The variant each key must be refused with, by name.
        let variant = |e: &ObjectKeyError| match e {
            ObjectKeyError::WrongPrefix { .. } => "prefix",
            ObjectKeyError::Shape { .. } => "shape",
            ObjectKeyError::Extension { .. } => "extension",
            ObjectKeyError::Id { .. } => "id",
            ObjectKeyError::Encoding { .. } => "encoding",
        };
        let cases = [
            ("signin/a/b.jpg", "prefix"),
            ("registrations/a.jpg", "shape"),
            ("registrations/a/b", "shape"),
            ("registrations/a/b.gif", "extension"),
            ("registrations/a/b.JPG", "extension"),
            ("registrations/../b.jpg", "id"),
            ("registrations/a/../b.jpg", "id"),
            ("registrations/a/b/c.jpg", "id"),
            ("registrations//b.jpg", "id"),
            ("registrations/a/.jpg", "id"),
        ];
        for (key, expected) in cases {
            let err = RegistrationUpload::parse_key(key).unwrap_err();
            assert_eq!(variant(&err), expected, "{key}: {err}");
        }
    }

    #[test]
    fn signin_keys_round_trip_and_refuse_registration_keys() {
        let selfie = SigninUpload::parse_key("signin/alice@example.com/c-42.jpg").unwrap();
        assert_eq!(selfie.key(), "signin/alice@example.com/c-42.jpg");
        assert!(SigninUpload::parse_key("registrations/alice/c-42.jpg").is_err());
        assert!(SigninUpload::parse_key("signin/alice/c-42.png").is_err());
        assert!(SigninUpload::parse_key("signin/../c-42.jpg").is_err());
    }
}
