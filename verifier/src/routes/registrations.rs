//! `POST /v1/registrations`: an upload URL for a new registration photo, and
//! `GET /v1/registrations/{user_id}`: where each of a user's registrations is.
//!
//! The upload itself starts the pipeline (S3 event -> indexer -> dedup-search); nothing is
//! written here. The state view leaves out face ids and bucket details: the caller needs the
//! state and the reasons, not the internals.

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use facegate_shared::config::Table;
use facegate_shared::ids::{UploadId, UserId};
use facegate_shared::objects::{ImageExtension, RegistrationUpload};
use facegate_shared::registration::{RegistrationRecord, RegistrationState};
use facegate_shared::tables::registrations;
use serde::Deserialize;
use serde_json::{Value, json};

use super::read_json;
use crate::auth::Caller;
use crate::error::VerifierError;
use crate::service::Verifier;
use crate::upload_url::presign_put;

/// A person may leave `user_id` out: it is theirs.
#[derive(Deserialize)]
struct NewRegistration {
    user_id: Option<String>,
}

pub async fn create(
    State(verifier): State<Verifier>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), VerifierError> {
    let limit = verifier.settings().max_json_bytes;
    let request: NewRegistration =
        read_json(body, limit, r#"registration request {"user_id": "..."}"#).await?;
    let user_id = match (request.user_id, &caller) {
        (Some(id), _) => UserId::parse(id)?,
        (None, Caller::Person(me)) => me.clone(),
        (None, Caller::App) => {
            return Err(VerifierError::invalid(
                r#"registration request {"user_id": "..."}"#,
                "user_id is missing",
            ));
        }
    };
    caller.may_act_for(&user_id)?;
    let upload = RegistrationUpload {
        user_id,
        upload_id: UploadId::random(),
        extension: ImageExtension::Jpg,
    };
    let ttl = std::time::Duration::from_secs(verifier.settings().registration_url_ttl_secs);
    let url = presign_put(&verifier, &upload.key(), ttl).await?;
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user_id": upload.user_id,
            "upload_id": upload.upload_id,
            "key": upload.key(),
            "url": url,
            "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })),
    ))
}

pub async fn show(
    State(verifier): State<Verifier>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, VerifierError> {
    let user = UserId::parse(user_id)?;
    caller.may_act_for(&user)?;
    let records = user_registrations(&verifier, &user).await?;
    if records.is_empty() {
        return Err(VerifierError::NotFound(format!(
            "registrations of user {user}"
        )));
    }
    let registrations: Vec<Value> = records.iter().map(view).collect();
    Ok(Json(
        json!({ "user_id": user, "registrations": registrations }),
    ))
}

/// What the caller sees of one registration.
fn view(record: &RegistrationRecord) -> Value {
    let mut view = json!({
        "upload_id": record.upload_id,
        "state": record.state.code(),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    });
    match &record.state {
        RegistrationState::Rejected { reasons } => view["reasons"] = json!(reasons),
        RegistrationState::Failed { detail } => view["detail"] = json!(detail),
        _ => {}
    }
    view
}

/// Every registration record of `user` (one partition), oldest upload id first.
pub async fn user_registrations(
    verifier: &Verifier,
    user: &UserId,
) -> Result<Vec<RegistrationRecord>, VerifierError> {
    let pages = verifier
        .dynamodb()
        .query()
        .table_name(verifier.table(Table::Registrations))
        .key_condition_expression("#user = :user")
        .expression_attribute_names("#user", registrations::USER_ID)
        .expression_attribute_values(":user", AttributeValue::S(user.to_string()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let mut records = Vec::new();
    for item in pages {
        let item = item.map_err(|e| VerifierError::dependency("Query registrations", e))?;
        match RegistrationRecord::from_item(&item) {
            Ok(record) => records.push(record),
            // One broken item should not hide the others; it is logged for the operators.
            Err(e) => tracing::warn!(user = %user, error = %e, "unreadable registration item"),
        }
    }
    Ok(records)
}
