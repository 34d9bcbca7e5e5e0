//! (in progress)

use std::sync::Arc;

use wharf_crds::{PipelineSpec, ProcessorKind};

use super::{BuildError, Processor};
use crate::io::Backend;

pub fn build(
    _spec: &PipelineSpec,
    _backend: Option<&Arc<dyn Backend>>,
) -> Result<Arc<dyn Processor>, BuildError> {
    Err(BuildError::Unavailable(ProcessorKind::SnapshotStatus))
}
