//! Types shared by both resources.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defaults;

/// Where and as whom AWS calls are made. Credentials never appear here: they come from the
/// Secret named by `credentialsSecretRef`, from the pod's service account (IRSA / workload
/// identity), or from the standard AWS environment and profile chain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSettings {
    /// AWS region, e.g. `eu-west-2`. Unset: taken from the environment (`AWS_REGION`).
    #[schemars(length(min = 1, max = 64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint of an AWS-compatible server (LocalStack, moto, ...), e.g. `http://moto:5000`.
    /// Unset: the real AWS endpoints.
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"), length(max = 2048))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// A Secret in the resource's namespace holding an access key pair, mounted into the
    /// workers as environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
}

/// Names a Secret that holds AWS credentials, and the keys inside it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key id inside the Secret.
    #[serde(default = "defaults::access_key_id_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key of the secret access key inside the Secret.
    #[serde(default = "defaults::secret_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
    /// Key of an optional session token inside the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub session_token_key: Option<String>,
}
