//! Liveness timeouts: a device or a source address that failed too many liveness checks
//! lately is refused before any face work (`liveness-timed-out`).
//!
//! The failure-alert worker counts failed checks per origin and writes the timeout
//! (`auth-failures` item `timeout#<origin>`, see [`tables::auth_failures`]); Verify only
//! reads it. AWS's advice for liveness is the default: 5 failed checks in 3 minutes time the
//! origin out for 30 minutes.

use chrono::{DateTime, Utc};
use facegate_shared::config::Table;
use facegate_shared::events::Origin;
use facegate_shared::tables::auth_failures;

use crate::deadline::Deadline;
use crate::error::VerifierError;
use crate::service::Verifier;

/// The first of `origins` that is timed out at `now`, if any.
pub async fn timed_out(
    verifier: &Verifier,
    origins: &[Origin],
    now: DateTime<Utc>,
    deadline: &Deadline,
) -> Result<Option<Origin>, VerifierError> {
    let reads = origins.iter().map(|origin| async move {
        let call = verifier
            .dynamodb()
            .get_item()
            .table_name(verifier.table(Table::AuthFailures))
            .set_key(Some(auth_failures::timeout_key(origin)))
            .consistent_read(true)
            .send();
        let item = deadline
            .run("GetItem auth-failures (timeout)", call)
            .await?
            .map_err(|e| VerifierError::dependency("GetItem auth-failures (timeout)", e))?
            .item;
        let until = item.as_ref().and_then(auth_failures::timed_out_until);
        Ok::<_, VerifierError>(until.is_some_and(|until| until > now.timestamp()))
    });
    for (origin, timed_out) in origins.iter().zip(futures::future::join_all(reads).await) {
        if timed_out? {
            return Ok(Some(origin.clone()));
        }
    }
    Ok(None)
}
