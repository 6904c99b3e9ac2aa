//! The selfie of a challenge: checking the answer (the key the client says it uploaded to),
//! reading the object with its metadata, and deleting it afterwards.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use facegate_shared::events::AuthFailureReason;
use facegate_shared::objects::SigninUpload;

use crate::challenge::IssuedChallenge;
use crate::deadline::Deadline;
use crate::error::VerifierError;
use crate::service::Verifier;

/// The answer must be exactly the issued key. Anything else (another user's key, an earlier
/// challenge's key, a registration photo, a path with `..`, a key with extra characters) is a
/// wrong answer; the key is parsed as well, so even a corrupted private parameter cannot point
/// the verifier at another user's object.
pub fn check_answer(
    answer: Option<&str>,
    challenge: &IssuedChallenge,
) -> Result<(), AuthFailureReason> {
    let answer = answer.ok_or(AuthFailureReason::WrongAnswer)?;
    if answer != challenge.key() {
        return Err(AuthFailureReason::WrongAnswer);
    }
    match SigninUpload::parse_key(answer) {
        Ok(upload) if upload == challenge.upload => Ok(()),
        _ => Err(AuthFailureReason::WrongAnswer),
    }
}

/// Why a selfie could not be read.
#[derive(Debug)]
pub enum FetchError {
    Refused(AuthFailureReason),
    Failed(VerifierError),
}

impl From<VerifierError> for FetchError {
    fn from(e: VerifierError) -> Self {
        Self::Failed(e)
    }
}

/// Reads the selfie at `key`: it must exist, be written no earlier than `issued_at` and be at
/// most `max_bytes`.
///
/// One `GetObject` instead of `HeadObject` + `GetObject`: its response carries the same
/// metadata (size, LastModified) before the body is read, so the checks happen before any
/// large body is downloaded, and one round trip is saved from the 5 s budget.
pub async fn fetch(
    verifier: &Verifier,
    key: &str,
    issued_at: DateTime<Utc>,
    deadline: &Deadline,
) -> Result<Bytes, FetchError> {
    let max_bytes = verifier.settings().max_selfie_bytes;
    let call = verifier
        .s3()
        .get_object()
        .bucket(verifier.bucket())
        .key(key)
        .send();
    let object = match deadline
        .run("GetObject selfie", call)
        .await
        .map_err(VerifierError::from)?
    {
        Ok(object) => object,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
            return Err(FetchError::Refused(AuthFailureReason::SelfieMissing));
        }
        Err(e) => return Err(VerifierError::dependency("GetObject selfie", e).into()),
    };
    let size = object.content_length().unwrap_or(0);
    if u64::try_from(size).unwrap_or(u64::MAX) > max_bytes {
        return Err(FetchError::Refused(AuthFailureReason::SelfieTooLarge));
    }
    let written = object
        .last_modified()
        .map(|t| t.secs())
        .ok_or_else(|| VerifierError::invalid("S3 object", "GetObject returned no LastModified"))?;
    if is_stale(written, issued_at) {
        return Err(FetchError::Refused(AuthFailureReason::SelfieStale));
    }
    let body = deadline
        .run("reading the selfie", object.body.collect())
        .await
        .map_err(VerifierError::from)?
        .map_err(|e| VerifierError::dependency("reading the selfie", e))?
        .into_bytes();
    // The size header could lie (or the object change between header and body).
    if u64::try_from(body.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(FetchError::Refused(AuthFailureReason::SelfieTooLarge));
    }
    Ok(body)
}

/// S3's `LastModified` has whole seconds: an object written in the same second as the
/// challenge was issued reads as written *before* it. So compare whole seconds. The key holds
/// a fresh random challenge id, so nothing could have been written there earlier anyway; this
/// check catches an object copied into place from before the challenge.
fn is_stale(written_secs: i64, issued_at: DateTime<Utc>) -> bool {
    written_secs < issued_at.timestamp()
}

/// Deletes the selfie: it is not kept once checked (the bucket's lifecycle rule removes any
/// that a crash leaves behind). A failure is logged, not fatal: the answer stands.
pub async fn delete(verifier: &Verifier, key: &str) {
    let result = verifier
        .s3()
        .delete_object()
        .bucket(verifier.bucket())
        .key(key)
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(key, error = %facegate_shared::report::chain(&e), "could not delete the selfie");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facegate_shared::ids::UserId;
    use std::time::Duration;

    #[test]
    fn only_the_exact_issued_key_is_accepted() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00.700Z".parse().unwrap();
        let issued = IssuedChallenge::new(
            UserId::parse("alice").unwrap(),
            "f".into(),
            now,
            Duration::from_secs(60),
        );
        let key = issued.key();
        assert_eq!(check_answer(Some(&key), &issued), Ok(()));
        let challenge = issued.upload.challenge_id.as_str();
        for wrong in [
            format!("signin/bob/{challenge}.jpg"),
            format!("signin/alice/../bob/{challenge}.jpg"),
            format!("registrations/alice/{challenge}.jpg"),
            format!("{key} "),
            "signin/alice/older-challenge.jpg".to_string(),
            String::new(),
        ] {
            assert_eq!(
                check_answer(Some(&wrong), &issued),
                Err(AuthFailureReason::WrongAnswer),
                "{wrong}"
            );
        }
        assert_eq!(
            check_answer(None, &issued),
            Err(AuthFailureReason::WrongAnswer)
        );
    }

    #[test]
    fn staleness_uses_whole_seconds() {
        let issued: DateTime<Utc> = "2026-11-21T12:00:00.900Z".parse().unwrap();
        let second = issued.timestamp();
        assert!(!is_stale(second, issued), "same second is not stale");
        assert!(!is_stale(second + 1, issued));
        assert!(is_stale(second - 1, issued));
    }
}
