//! The AWS JSON 1.1 protocol: which operation a request asks for, its body, and the answer.
//!
//! Every call is `POST /` with `X-Amz-Target: RekognitionService.<Operation>` and a JSON body
//! whose field names are Rekognition's (PascalCase); the answer is JSON of the same style.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "RekognitionService.";

/// The operation named by `X-Amz-Target`.
pub fn operation(headers: &HeaderMap) -> Result<&str, ApiError> {
    let target = headers
        .get("x-amz-target")
        .ok_or_else(|| {
            ApiError::UnknownOperation(
                "missing X-Amz-Target header: expected RekognitionService.<Operation>".into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::UnknownOperation("X-Amz-Target is not ASCII".into()))?;
    target
        .strip_prefix(TARGET_PREFIX)
        .filter(|op| !op.is_empty())
        .ok_or_else(|| {
            ApiError::UnknownOperation(format!(
                "X-Amz-Target {target:?} is not a RekognitionService operation"
            ))
        })
}

/// Parse a request body; an empty body counts as `{}` (operations without parameters).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Serialization(format!("could not read the request body: {e}")))
}

/// A successful answer.
pub fn reply<T: Serialize>(value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_string(value)
        .map_err(|e| ApiError::Internal(format!("could not encode the answer: {e}")))?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_comes_from_the_target_header() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            operation(&headers),
            Err(ApiError::UnknownOperation(_))
        ));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("RekognitionService.CompareFaces"),
        );
        assert_eq!(operation(&headers).unwrap(), "CompareFaces");
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.GetItem"),
        );
        assert!(matches!(
            operation(&headers),
            Err(ApiError::UnknownOperation(_))
        ));
    }

    #[test]
    fn bodies_that_are_not_json_are_serialization_errors() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Req {
            #[serde(rename = "MaxResults")]
            max_results: Option<u32>,
        }
        assert!(parse::<Req>(b"").is_ok());
        assert!(matches!(
            parse::<Req>(b"{not json"),
            Err(ApiError::Serialization(_))
        ));
        assert!(matches!(
            parse::<Req>(br#"{"MaxResults": "ten"}"#),
            Err(ApiError::Serialization(_))
        ));
    }
}
