//! (in progress)

use std::sync::Arc;

use wharf_crds::{PipelineSpec, ProcessorKind};

use super::{BuildError, Processor};

pub fn build(_spec: &PipelineSpec) -> Result<Arc<dyn Processor>, BuildError> {
    Err(BuildError::Unavailable(ProcessorKind::InfraEvents))
}
