//! The trigger Lambda of the local user pool: a `provided.al2023` function whose whole package
//! is a `bootstrap` script that runs this very binary as `facegate verifier --lambda`.
//!
//! The local emulator runs such a function as a process on the host, so the package names an
//! absolute path instead of carrying a copy of the (large) binary. The zip is built
//! byte-for-byte the same for the same path, so its SHA-256 tells a re-run whether the code
//! changed. On AWS the function (and its IAM role and invoke permission) come from the
//! CloudFormation template instead.

use std::collections::HashMap;
use std::io::Write;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::plan::TriggerFunctionPlan;
use super::{Change, ProvisionError, Report, aws_error};

/// Cognito gives a trigger 5 seconds; the function may not take longer.
pub const TIMEOUT_SECS: i32 = 5;
/// Locally any role is accepted; the name says what it stands for.
const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/facegate-triggers";

/// The deployment package: `bootstrap`, executable, running `binary verifier --lambda`.
pub fn package(plan: &TriggerFunctionPlan) -> Result<Vec<u8>, ProvisionError> {
    let binary = plan.binary.to_string_lossy();
    // Single quotes keep any character of the path literal; a quote in it is closed, escaped
    // and reopened.
    let quoted = format!("'{}'", binary.replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\n# facegate's Cognito trigger function.\nexec {quoted} verifier --lambda\n"
    );
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    let failed = |e: &dyn std::fmt::Display| ProvisionError::Package {
        detail: e.to_string(),
    };
    zip.start_file("bootstrap", options)
        .map_err(|e| failed(&e))?;
    zip.write_all(script.as_bytes()).map_err(|e| failed(&e))?;
    Ok(zip.finish().map_err(|e| failed(&e))?.into_inner())
}

/// Lambda's `CodeSha256`: the base64 of the package's SHA-256.
pub fn code_sha256(package: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(package))
}

/// Creates the function, or brings its code, environment and timeout in line. Returns its ARN.
pub(super) async fn ensure_function(
    lambda: &aws_sdk_lambda::Client,
    plan: &TriggerFunctionPlan,
    report: &mut Report,
) -> Result<String, ProvisionError> {
    let name = plan.name.as_str();
    let package = package(plan)?;
    let sha = code_sha256(&package);
    let environment = || {
        Environment::builder()
            .set_variables(Some(plan.environment.clone().into_iter().collect()))
            .build()
    };
    let existing = match lambda.get_function().function_name(name).send().await {
        Ok(found) => found.configuration,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => return Err(aws_error("GetFunction", name)(e)),
    };
    let Some(existing) = existing else {
        let created = lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(LOCAL_ROLE)
            .timeout(TIMEOUT_SECS)
            .code(FunctionCode::builder().zip_file(Blob::new(package)).build())
            .environment(environment())
            .description("facegate: Cognito custom-auth and sign-up triggers")
            .send()
            .await
            .map_err(aws_error("CreateFunction", name))?;
        report.record("function", name, Change::Created);
        return created.function_arn.ok_or(ProvisionError::Incomplete {
            call: "CreateFunction",
            resource: name.into(),
            what: "function ARN",
        });
    };
    let mut changed = Vec::new();
    if existing.code_sha256() != Some(sha.as_str()) {
        lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(package))
            .send()
            .await
            .map_err(aws_error("UpdateFunctionCode", name))?;
        changed.push(format!("code: runs {}", plan.binary.display()));
    }
    let variables: HashMap<String, String> = existing
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let wanted: HashMap<String, String> = plan.environment.clone().into_iter().collect();
    let environment_differs = variables != wanted;
    let timeout_differs = existing.timeout() != Some(TIMEOUT_SECS);
    if environment_differs || timeout_differs {
        lambda
            .update_function_configuration()
            .function_name(name)
            .environment(environment())
            .timeout(TIMEOUT_SECS)
            .send()
            .await
            .map_err(aws_error("UpdateFunctionConfiguration", name))?;
        if environment_differs {
            let mut keys: Vec<&String> = wanted
                .iter()
                .filter(|(k, v)| variables.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(variables.keys().filter(|k| !wanted.contains_key(*k)))
                .collect();
            keys.sort();
            changed.push(format!(
                "environment: {}",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        if timeout_differs {
            changed.push(format!("timeout {TIMEOUT_SECS} s"));
        }
    }
    let change = if changed.is_empty() {
        Change::Unchanged
    } else {
        Change::Updated(changed)
    };
    report.record("function", name, change);
    existing.function_arn.ok_or(ProvisionError::Incomplete {
        call: "GetFunction",
        resource: name.into(),
        what: "function ARN",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;

    fn plan(binary: &str) -> TriggerFunctionPlan {
        TriggerFunctionPlan {
            name: "demo-verifier-trigger".into(),
            binary: binary.into(),
            environment: BTreeMap::new(),
        }
    }

    #[test]
    fn the_package_runs_the_binary_and_is_the_same_every_time() {
        let a = package(&plan("/opt/face gate/it's/facegate")).unwrap();
        assert_eq!(a, package(&plan("/opt/face gate/it's/facegate")).unwrap());
        assert_ne!(
            code_sha256(&a),
            code_sha256(&package(&plan("/other")).unwrap())
        );
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
        let mut file = zip.by_name("bootstrap").unwrap();
        assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o755));
        let mut script = String::new();
        file.read_to_string(&mut script).unwrap();
        assert!(
            script.contains(r"exec '/opt/face gate/it'\''s/facegate' verifier --lambda"),
            "{script}"
        );
    }
}
