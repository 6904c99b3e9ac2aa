//! `DELETE /v1/users/{user_id}`: erase a user everywhere (see [`crate::erase`]). Answers what
//! was removed; erasing a user who is not there is not an error (nothing is removed).

use axum::Json;
use axum::extract::{Extension, Path, State};
use facegate_shared::ids::UserId;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::erase::erase_user;
use crate::error::VerifierError;
use crate::service::Verifier;

pub async fn erase(
    State(verifier): State<Verifier>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, VerifierError> {
    let user = UserId::parse(user_id)?;
    caller.may_act_for(&user)?;
    let erased = erase_user(&verifier, &user).await?;
    Ok(Json(json!({ "user_id": user, "erased": erased })))
}
