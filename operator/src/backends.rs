//! Where the scaler loops read queue depth: AWS (or an AWS-compatible endpoint) with the
//! operator's own identity, or a fixed backend (the embedded one, in tests and local runs).
//!
//! The operator reads only queue attributes (`sqs:GetQueueAttributes`); a Pipeline's
//! `credentialsSecretRef` is for its workers and is never read by the operator.

use std::sync::Arc;

use wharf_workers::io::Backend;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};

use crate::scaler_loop::BackendFactory;

/// AWS clients configured from each Pipeline's `aws` block (region, endpoint), with
/// `overrides` taking precedence and credentials from the standard chain (IRSA in a cluster).
pub fn aws(overrides: AwsOverrides) -> BackendFactory {
    Arc::new(move |settings| {
        let overrides = overrides.clone();
        Box::pin(async move {
            let config = sdk_config(settings.as_ref(), &overrides).await;
            Arc::new(AwsBackend::new(&config)) as Arc<dyn Backend>
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
