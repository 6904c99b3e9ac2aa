//! Construction of the AWS clients every role uses.
//!
//! One place decides where each service is reached: the standard `AWS_ENDPOINT_URL` and the
//! per-service `AWS_ENDPOINT_URL_<SERVICE>` overrides, or, when `FACEGATE_ENV=local` (the
//! default), the local stack on loopback with throw-away credentials. Retries and timeouts are
//! set here on purpose instead of inheriting whatever the SDK defaults to this year.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::config::Credentials;

/// The local emulator (ministack or LocalStack) for S3, SQS, SNS, DynamoDB and CloudWatch.
pub const LOCAL_STACK_URL: &str = "http://127.0.0.1:4566";
/// facegate's own face engine, which answers Rekognition's API.
pub const LOCAL_ENGINE_URL: &str = "http://127.0.0.1:4599";

/// Where facegate runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// The local stack on loopback and the local face engine; test credentials unless set.
    Local,
    /// Real AWS: endpoints and credentials from the standard AWS configuration chain.
    Aws,
}

/// How to reach AWS. Every field is also an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct AwsSettings {
    /// `local`: every service defaults to the local stack; `aws`: the real endpoints.
    #[arg(long = "env", env = "FACEGATE_ENV", value_enum, default_value_t = Deployment::Local)]
    pub deployment: Deployment,
    /// AWS region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Endpoint for every AWS service (overridden per service below).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Endpoint for S3.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    pub endpoint_url_s3: Option<String>,
    /// Endpoint for SQS.
    #[arg(long, env = "AWS_ENDPOINT_URL_SQS")]
    pub endpoint_url_sqs: Option<String>,
    /// Endpoint for SNS.
    #[arg(long, env = "AWS_ENDPOINT_URL_SNS")]
    pub endpoint_url_sns: Option<String>,
    /// Endpoint for DynamoDB.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    pub endpoint_url_dynamodb: Option<String>,
    /// Endpoint for CloudWatch.
    #[arg(long, env = "AWS_ENDPOINT_URL_CLOUDWATCH")]
    pub endpoint_url_cloudwatch: Option<String>,
    /// Endpoint for Rekognition (locally: `facegate engine`, default http://127.0.0.1:4599).
    #[arg(long, env = "AWS_ENDPOINT_URL_REKOGNITION")]
    pub endpoint_url_rekognition: Option<String>,
    /// Amazon Cognito user pools (the sign-in pool, its JWKS).
    #[arg(long, env = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")]
    pub endpoint_url_cognito: Option<String>,
    /// AWS Lambda (where `facegate provision` installs the local trigger function).
    #[arg(long, env = "AWS_ENDPOINT_URL_LAMBDA")]
    pub endpoint_url_lambda: Option<String>,
    /// Access key id the Rekognition client signs with instead of the AWS credential chain:
    /// for facegate's own face engine standing in for Rekognition in a cluster, whose
    /// `FACEGATE_ENGINE_ACCESS_KEY_ID` it must match. Unset: the chain's credentials.
    #[arg(long, env = "FACEGATE_REKOGNITION_ACCESS_KEY_ID")]
    pub rekognition_access_key_id: Option<String>,
    /// The secret of `--rekognition-access-key-id`.
    #[arg(
        long,
        env = "FACEGATE_REKOGNITION_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub rekognition_secret_access_key: Option<String>,
    /// Attempts per AWS call, first try included (standard retry mode, jittered backoff).
    #[arg(long, env = "FACEGATE_AWS_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Connect timeout for AWS calls, in milliseconds.
    #[arg(long, env = "FACEGATE_AWS_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub connect_timeout_ms: u64,
    /// Timeout of one AWS call including its retries, in milliseconds. Long polls (20 s) are
    /// given their own margin on top of this.
    #[arg(
        long,
        env = "FACEGATE_AWS_OPERATION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub operation_timeout_ms: u64,
}

/// An AWS service facegate talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    S3,
    Sqs,
    Sns,
    DynamoDb,
    CloudWatch,
    Rekognition,
    Cognito,
    Lambda,
}

impl AwsSettings {
    /// Settings for the local stack with every default, as the tests use them.
    pub fn local() -> Self {
        Self {
            deployment: Deployment::Local,
            region: "us-east-1".into(),
            endpoint_url: None,
            endpoint_url_s3: None,
            endpoint_url_sqs: None,
            endpoint_url_sns: None,
            endpoint_url_dynamodb: None,
            endpoint_url_cloudwatch: None,
            endpoint_url_rekognition: None,
            endpoint_url_cognito: None,
            endpoint_url_lambda: None,
            rekognition_access_key_id: None,
            rekognition_secret_access_key: None,
            max_attempts: 3,
            connect_timeout_ms: 2_000,
            operation_timeout_ms: 10_000,
        }
    }

    /// The endpoint to use for `service`, or `None` for AWS's own.
    pub fn endpoint(&self, service: Service) -> Option<String> {
        let specific = match service {
            Service::S3 => &self.endpoint_url_s3,
            Service::Sqs => &self.endpoint_url_sqs,
            Service::Sns => &self.endpoint_url_sns,
            Service::DynamoDb => &self.endpoint_url_dynamodb,
            Service::CloudWatch => &self.endpoint_url_cloudwatch,
            Service::Rekognition => &self.endpoint_url_rekognition,
            Service::Cognito => &self.endpoint_url_cognito,
            Service::Lambda => &self.endpoint_url_lambda,
        };
        let local_default = match service {
            Service::Rekognition => LOCAL_ENGINE_URL,
            _ => LOCAL_STACK_URL,
        };
        specific
            .clone()
            .or_else(|| match service {
                // The engine is not the emulator: the generic override never points at it.
                Service::Rekognition => None,
                _ => self.endpoint_url.clone(),
            })
            .filter(|url| !url.is_empty())
            .or_else(|| (self.deployment == Deployment::Local).then(|| local_default.to_string()))
    }

    /// The shared SDK configuration: region, credentials, retries, timeouts.
    pub async fn sdk_config(&self) -> SdkConfig {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .operation_timeout(Duration::from_millis(self.operation_timeout_ms))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)))
            .timeout_config(timeouts);
        if self.deployment == Deployment::Local && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            // The emulator accepts any signature; a fixed key keeps the credential chain from
            // probing instance metadata (which does not exist here) on every start.
            loader = loader.credentials_provider(Credentials::new(
                "test",
                "test",
                None,
                None,
                "facegate-local",
            ));
        }
        loader.load().await
    }

    /// Every client, built once at start-up and cloned cheaply afterwards.
    pub async fn clients(&self) -> AwsClients {
        let sdk = self.sdk_config().await;
        AwsClients {
            s3: self.s3(&sdk),
            sqs: self.sqs(&sdk),
            sns: self.sns(&sdk),
            dynamodb: self.dynamodb(&sdk),
            cloudwatch: self.cloudwatch(&sdk),
            rekognition: self.rekognition(&sdk),
            cognito: self.cognito(&sdk),
            lambda: self.lambda(&sdk),
        }
    }

    pub fn s3(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        let mut b = aws_sdk_s3::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::S3) {
            // Emulators serve buckets by path, not by virtual host.
            b = b.endpoint_url(url).force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    pub fn sqs(&self, sdk: &SdkConfig) -> aws_sdk_sqs::Client {
        let mut b = aws_sdk_sqs::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::Sqs) {
            b = b.endpoint_url(url);
        }
        // A long poll waits up to 20 s for messages: give it room beyond the usual timeout.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .operation_timeout(Duration::from_millis(self.operation_timeout_ms + 25_000))
            .build();
        b = b.timeout_config(timeouts);
        aws_sdk_sqs::Client::from_conf(b.build())
    }

    pub fn sns(&self, sdk: &SdkConfig) -> aws_sdk_sns::Client {
        let mut b = aws_sdk_sns::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::Sns) {
            b = b.endpoint_url(url);
        }
        aws_sdk_sns::Client::from_conf(b.build())
    }

    pub fn dynamodb(&self, sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let mut b = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::DynamoDb) {
            b = b.endpoint_url(url);
        }
        aws_sdk_dynamodb::Client::from_conf(b.build())
    }

    pub fn cloudwatch(&self, sdk: &SdkConfig) -> aws_sdk_cloudwatch::Client {
        let mut b = aws_sdk_cloudwatch::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::CloudWatch) {
            b = b.endpoint_url(url);
        }
        aws_sdk_cloudwatch::Client::from_conf(b.build())
    }

    pub fn rekognition(&self, sdk: &SdkConfig) -> aws_sdk_rekognition::Client {
        let mut b = aws_sdk_rekognition::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::Rekognition) {
            b = b.endpoint_url(url);
        }
        // The engine checks signatures against its own key pair, not IAM's: the role's
        // credentials (IRSA, ECS task role) would be refused there.
        if let (Some(key), Some(secret)) = (
            &self.rekognition_access_key_id,
            &self.rekognition_secret_access_key,
        ) {
            b = b.credentials_provider(Credentials::new(
                key,
                secret,
                None,
                None,
                "facegate-rekognition",
            ));
        }
        aws_sdk_rekognition::Client::from_conf(b.build())
    }

    pub fn cognito(&self, sdk: &SdkConfig) -> aws_sdk_cognitoidentityprovider::Client {
        let mut b = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::Cognito) {
            b = b.endpoint_url(url);
        }
        aws_sdk_cognitoidentityprovider::Client::from_conf(b.build())
    }

    pub fn lambda(&self, sdk: &SdkConfig) -> aws_sdk_lambda::Client {
        let mut b = aws_sdk_lambda::config::Builder::from(sdk);
        if let Some(url) = self.endpoint(Service::Lambda) {
            b = b.endpoint_url(url);
        }
        aws_sdk_lambda::Client::from_conf(b.build())
    }
}

/// The AWS clients of one process. Cloning is cheap (each client is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub rekognition: aws_sdk_rekognition::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub lambda: aws_sdk_lambda::Client,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_defaults_point_at_the_stack_and_the_engine() {
        let s = AwsSettings::local();
        assert_eq!(s.endpoint(Service::Sqs).as_deref(), Some(LOCAL_STACK_URL));
        assert_eq!(
            s.endpoint(Service::Rekognition).as_deref(),
            Some(LOCAL_ENGINE_URL)
        );
    }

    #[test]
    fn per_service_override_beats_the_generic_one() {
        let s = AwsSettings {
            endpoint_url: Some("http://10.0.0.1:4566".into()),
            endpoint_url_s3: Some("http://s3.local:9000".into()),
            ..AwsSettings::local()
        };
        assert_eq!(
            s.endpoint(Service::S3).as_deref(),
            Some("http://s3.local:9000")
        );
        assert_eq!(
            s.endpoint(Service::Sns).as_deref(),
            Some("http://10.0.0.1:4566")
        );
        // The generic override is for the emulator, never for the face engine.
        assert_eq!(
            s.endpoint(Service::Rekognition).as_deref(),
            Some(LOCAL_ENGINE_URL)
        );
    }

    #[test]
    fn aws_deployment_uses_real_endpoints_unless_overridden() {
        let s = AwsSettings {
            deployment: Deployment::Aws,
            ..AwsSettings::local()
        };
        assert_eq!(s.endpoint(Service::DynamoDb), None);
        assert_eq!(s.endpoint(Service::Rekognition), None);
        let s = AwsSettings {
            endpoint_url_rekognition: Some("http://engine:4599".into()),
            ..s
        };
        assert_eq!(
            s.endpoint(Service::Rekognition).as_deref(),
            Some("http://engine:4599")
        );
    }
}
