//! Wharf's custom resources, `Pipeline` and `SlaCheck` (group `wharf.dev`, version
//! `v1alpha1`): their types and defaults, the CRD manifests generated from them, and
//! validation that reports every problem with its field path and a fix.

pub mod common;
pub mod crdgen;
pub mod defaults;
pub mod manifest;
pub mod pipeline;
pub mod problem;
pub mod rules;
mod schema_check;
pub mod slacheck;
pub mod validation;

pub use common::{AwsSettings, CredentialsSecretRef};
pub use pipeline::{Pipeline, PipelineSpec, PipelineStatus, ProcessorKind};
pub use problem::Problem;
pub use slacheck::{SlaCheck, SlaCheckSpec, SlaCheckStatus};
pub use validation::Validate;
