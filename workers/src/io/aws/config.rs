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
