//! Pagination tokens: where the next page starts, opaque to the caller.
//!
//! A token names what it pages through (a collection's faces, or the collection list) and the
//! last key returned, base64-encoded. It stays valid while faces are added or deleted: the next
//! page simply starts after that key. A token for something else is refused, as Rekognition's
//! `InvalidPaginationTokenException` does.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: &str = "fg1";

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid pagination token")]
pub struct InvalidToken;

/// A token to continue listing `scope` after `last_key`.
pub fn encode(scope: &str, last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}\n{scope}\n{last_key}"))
}

/// The last key of the previous page, if `token` was made for `scope`.
pub fn decode(scope: &str, token: &str) -> Result<String, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| InvalidToken)?;
    let text = String::from_utf8(bytes).map_err(|_| InvalidToken)?;
    let mut parts = text.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(s), Some(key)) if s == scope && !key.is_empty() => Ok(key.to_owned()),
        _ => Err(InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_in_its_own_scope_only() {
        let token = encode("faces/people", "5f0c1d8e-0000-4000-8000-000000000000");
        assert_eq!(
            decode("faces/people", &token).unwrap(),
            "5f0c1d8e-0000-4000-8000-000000000000"
        );
        assert_eq!(decode("faces/other", &token), Err(InvalidToken));
        assert_eq!(decode("collections", &token), Err(InvalidToken));
    }

    #[test]
    fn garbage_is_refused() {
        for token in [
            "",
            "!!!",
            "aGVsbG8",
            &URL_SAFE_NO_PAD.encode("fg1\nscope\n"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert_eq!(decode("scope", token), Err(InvalidToken), "{token}");
        }
    }
}
