//! Where the scaler loops read queue depth: AWS (or an AWS-compatible endpoint) with the
//! operator's own identity, or a fixed backend (the embedded one, in tests and local runs).
//!
//! The operator reads only queue attributes (`sqs:GetQueueAttributes`); a Pipeline's
//! `credentialsSecretRef` is for its workers and is never read by the operator.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use wharf_workers::io::Backend;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};

use crate::scaler_loop::BackendFactory;

/// Region and endpoint: what distinguishes one set of AWS clients from another here (the
/// credentials are always the operator's own).
type ClientKey = (Option<String>, Option<String>);

/// AWS clients configured from each Pipeline's `aws` block (region, endpoint), with
/// `overrides` taking precedence and credentials from the standard chain (IRSA in a cluster).
/// Pipelines with the same region and endpoint share one set of clients and one connection
/// pool: with hundreds of Pipelines, a set each would cost memory and connections for nothing.
pub fn aws(overrides: AwsOverrides) -> BackendFactory {
    let clients: Arc<Mutex<HashMap<ClientKey, Arc<dyn Backend>>>> = Arc::default();
    Arc::new(move |settings| {
        let overrides = overrides.clone();
        let clients = Arc::clone(&clients);
        Box::pin(async move {
            let key: ClientKey = (
                overrides
                    .region
                    .clone()
                    .or_else(|| settings.as_ref().and_then(|s| s.region.clone())),
                overrides
                    .endpoint_url
                    .clone()
                    .or_else(|| settings.as_ref().and_then(|s| s.endpoint_url.clone())),
            );
            let mut clients = clients.lock().await;
            if let Some(backend) = clients.get(&key) {
                return Arc::clone(backend);
            }
            let config = sdk_config(settings.as_ref(), &overrides).await;
            let backend: Arc<dyn Backend> = Arc::new(AwsBackend::new(&config));
            clients.insert(key, Arc::clone(&backend));
            backend
        })
    })
}

/// The same backend for every Pipeline.
pub fn fixed(backend: Arc<dyn Backend>) -> BackendFactory {
    Arc::new(move |_| {
        let backend = Arc::clone(&backend);
        Box::pin(async move { backend })
    })
}

#[cfg(test)]
mod tests {
    use wharf_crds::AwsSettings;

    use super::*;

    fn settings(region: &str, endpoint: &str) -> Option<AwsSettings> {
        Some(AwsSettings {
            region: Some(region.to_owned()),
            endpoint_url: Some(endpoint.to_owned()),
            credentials_secret_ref: None,
        })
    }

    #[tokio::test]
    async fn pipelines_with_the_same_region_and_endpoint_share_clients() {
        let factory = aws(AwsOverrides::default());
        let a = factory(settings("eu-west-2", "http://127.0.0.1:1")).await;
        let b = factory(settings("eu-west-2", "http://127.0.0.1:1")).await;
        let other_region = factory(settings("us-east-1", "http://127.0.0.1:1")).await;
        let other_endpoint = factory(settings("eu-west-2", "http://127.0.0.1:2")).await;
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other_region));
        assert!(!Arc::ptr_eq(&a, &other_endpoint));
    }
}
