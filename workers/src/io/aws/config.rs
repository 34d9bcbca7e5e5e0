//! Builds the AWS SDK configuration shared by every client: region, endpoint and credentials
//! from the Pipeline's `aws` block, then the standard environment / profile / web-identity /
//! container / instance chain. Credentials are never read from a spec.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::SharedCredentialsProvider;
use aws_smithy_http_client::tls;
use wharf_crds::AwsSettings;

/// Longest any single HTTP attempt may take: above SQS's 20 s long poll, with margin.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a call may take across its retries.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(90);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings that override the Pipeline's `aws` block (command-line flags, tests).
#[derive(Clone, Debug, Default)]
pub struct AwsOverrides {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// Explicit credentials; `None` uses the standard provider chain.
    pub credentials: Option<SharedCredentialsProvider>,
}

/// Loads the SDK configuration for a resource's `aws` block.
pub async fn sdk_config(settings: Option<&AwsSettings>, overrides: &AwsOverrides) -> SdkConfig {
    let endpoint = overrides
        .endpoint_url
        .clone()
        .or_else(|| settings.and_then(|s| s.endpoint_url.clone()));
    let region = overrides
        .region
        .clone()
        .or_else(|| settings.and_then(|s| s.region.clone()));

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(credentials) = &overrides.credentials {
        loader = loader.credentials_provider(credentials.clone());
    }
    loader.load().await
}

/// The one HTTP client stack (hyper 1 + rustls with ring) used by every AWS client.
pub fn https_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An S3 client that works against emulators too: path-style addressing whenever a custom
/// endpoint is set (virtual-hosted style would need `bucket.localhost` DNS).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Why a worker cannot start against AWS.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    #[error("no AWS region: set spec.aws.region in the Pipeline or AWS_REGION in the environment")]
    NoRegion,
    #[error(
        "no AWS credentials ({0}): give the worker AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (spec.aws.credentialsSecretRef does this in a cluster), a profile, or a service account \
         with a role (IRSA / workload identity)"
    )]
    NoCredentials(String),
}

/// Checks once, at start-up, that `config` can sign requests, so a worker without a region or
/// credentials fails at once with a message that says what to set, instead of retrying every
/// call as if the service were down.
pub async fn check_ready(config: &SdkConfig) -> Result<(), AwsSetupError> {
    use aws_sdk_sqs::config::ProvideCredentials;

    if config.region().is_none() {
        return Err(AwsSetupError::NoRegion);
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| AwsSetupError::NoCredentials("no provider configured".to_owned()))?;
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        // The error says which sources were tried; it never contains a secret.
        .map_err(|error| AwsSetupError::NoCredentials(error.to_string()))
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};

    use super::*;

    #[tokio::test]
    async fn explicit_credentials_and_a_region_are_ready() {
        let overrides = AwsOverrides {
            region: Some("eu-west-2".to_owned()),
            credentials: Some(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))),
            ..AwsOverrides::default()
        };
        let config = sdk_config(None, &overrides).await;
        check_ready(&config).await.expect("ready");
    }

    #[tokio::test]
    async fn a_missing_region_is_named() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let error = check_ready(&config).await.unwrap_err();
        assert!(error.to_string().contains("spec.aws.region"), "{error}");
    }

    #[tokio::test]
    async fn missing_credentials_say_what_to_set() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-2"))
            .build();
        let error = check_ready(&config).await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");
        assert!(text.contains("credentialsSecretRef"), "{text}");
    }
}
