//! The Rekognition collection that holds every registered face (locally: the face engine).

use aws_sdk_rekognition::error::SdkError;

use super::{Change, ProvisionError, aws_error};

pub(super) async fn ensure_collection(
    rekognition: &aws_sdk_rekognition::Client,
    collection: &str,
    endpoint: &str,
) -> Result<Change, ProvisionError> {
    match rekognition
        .create_collection()
        .collection_id(collection)
        .send()
        .await
    {
        Ok(_) => Ok(Change::Created),
        // There is no "create if missing": an existing collection is the idempotent answer.
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_already_exists_exception()) =>
        {
            Ok(Change::Unchanged)
        }
        // Nothing answered: most likely the engine is not running. Say so plainly.
        Err(e @ (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))) => {
            Err(ProvisionError::EngineUnreachable {
                endpoint: endpoint.into(),
                collection: collection.into(),
                source: Box::new(e),
            })
        }
        Err(e) => Err(aws_error(
            "CreateCollection",
            &format!("collection {collection}"),
        )(e)),
    }
}
