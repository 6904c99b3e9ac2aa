//! Presigned S3 PUT URLs: how a client uploads a selfie or a registration photo without AWS
//! credentials of its own. The URL allows one thing, a PUT of that key, until it expires.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use crate::error::VerifierError;
use crate::service::Verifier;

/// A presigned `PUT` URL for `key` in the stack's bucket, valid for `ttl`.
pub async fn presign_put(
    verifier: &Verifier,
    key: &str,
    ttl: Duration,
) -> Result<String, VerifierError> {
    let config = PresigningConfig::expires_in(ttl)
        .map_err(|e| VerifierError::dependency("presigning an upload URL", e))?;
    // Signing happens locally: no request goes to S3 here.
    let request = verifier
        .s3()
        .put_object()
        .bucket(verifier.bucket())
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| VerifierError::dependency("presigning an upload URL", e))?;
    Ok(request.uri().to_string())
}
