//! The health a process reports on `/healthz`: shared between the code that knows (start-up,
//! shutdown) and the HTTP server that answers the probe.

use std::sync::{Arc, Mutex, PoisonError};

/// Whether the process is healthy, and if not, why. Clones share one state.
///
/// A new state is unhealthy with the reason "starting", so a probe never passes before the
/// process has said it is ready.
#[derive(Clone, Debug, Default)]
pub struct HealthState {
    condition: Arc<Mutex<Condition>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Healthy,
    Unhealthy(String),
}

impl Default for Condition {
    fn default() -> Self {
        Condition::Unhealthy("starting".to_owned())
    }
}

impl HealthState {
    /// Marks the process ready: `/healthz` answers 200.
    pub fn set_healthy(&self) {
        self.replace(Condition::Healthy);
    }

    /// Marks the process unhealthy: `/healthz` answers 503 with `reason`.
    pub fn set_unhealthy(&self, reason: &str) {
        self.replace(Condition::Unhealthy(reason.to_owned()));
    }

    /// True after `set_healthy` until the next `set_unhealthy`.
    pub fn is_healthy(&self) -> bool {
        self.unhealthy_reason().is_none()
    }

    /// Why the process is unhealthy, or `None` when it is healthy.
    pub fn unhealthy_reason(&self) -> Option<String> {
        // A poisoned lock still holds a whole `Condition`: the writer cannot panic mid-update.
        match &*self
            .condition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Condition::Healthy => None,
            Condition::Unhealthy(reason) => Some(reason.clone()),
        }
    }

    fn replace(&self, condition: Condition) {
        *self
            .condition
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = condition;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_is_unhealthy_because_it_is_starting() {
        let health = HealthState::default();
        assert!(!health.is_healthy());
        assert_eq!(health.unhealthy_reason().as_deref(), Some("starting"));
    }

    #[test]
    fn clones_share_transitions() {
        let health = HealthState::default();
        let probe = health.clone();
        health.set_healthy();
        assert!(probe.is_healthy());
        health.set_unhealthy("draining");
        assert_eq!(probe.unhealthy_reason().as_deref(), Some("draining"));
    }
}
