//! What each Pipeline's scaler loop last saw and decided, shared with the controller.
//!
//! The controller is the only writer of a Pipeline's status (server-side apply of the whole
//! status with one field manager); the scaler loops record here and ask for a reconcile, so
//! backlog, last scale and the `Degraded` condition reach the status without two writers
//! racing over it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::runtime::reflector::ObjectRef;
use wharf_crds::Pipeline;
use wharf_crds::pipeline::{Backlog, ScaleChange};

/// One Pipeline's scaler, as last reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleReport {
    /// The last successful queue-depth observation.
    pub backlog: Option<Backlog>,
    /// The last change of the replica count.
    pub last_scale: Option<ScaleChange>,
    /// Replicas the autoscaler wants now.
    pub desired_replicas: Option<i32>,
    /// Why the last decision was taken (a hold or a change).
    pub last_reason: Option<String>,
    /// Set while the queue cannot be polled: the replica count is then left as it is.
    pub queue_error: Option<String>,
}

/// Reports by Pipeline, cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct ScaleReports {
    inner: Arc<Mutex<HashMap<ObjectRef<Pipeline>, ScaleReport>>>,
}

impl ScaleReports {
    /// The report for a Pipeline, if its scaler has reported.
    pub fn get(&self, pipeline: &ObjectRef<Pipeline>) -> Option<ScaleReport> {
        // A panic while holding the lock cannot leave a report half-written (writes replace
        // whole values), so a poisoned lock is still safe to read.
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pipeline)
            .cloned()
    }

    /// Changes the report of a Pipeline in place.
    pub fn update(&self, pipeline: &ObjectRef<Pipeline>, change: impl FnOnce(&mut ScaleReport)) {
        let mut reports = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        change(reports.entry(pipeline.clone()).or_default());
    }

    /// Forgets a Pipeline (its scaler stopped).
    pub fn remove(&self, pipeline: &ObjectRef<Pipeline>) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pipeline);
    }
}
