//! Status conditions (`Ready`, `Scaling`, `Degraded`) built from what the controller observed,
//! keeping `lastTransitionTime` when a condition's status has not changed, and telling which
//! conditions changed so Events are published on transitions only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const SCALING: &str = "Scaling";
pub const DEGRADED: &str = "Degraded";

/// Reasons a person can grep for in `kubectl describe` and Events.
pub mod reason {
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const WORKERS_READY: &str = "WorkersReady";
    pub const WORKERS_STARTING: &str = "WorkersStarting";
    pub const SCALED_TO_ZERO: &str = "ScaledToZero";
    pub const AUTOSCALING: &str = "Autoscaling";
    pub const FIXED_REPLICAS: &str = "FixedReplicas";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const QUEUE_UNREACHABLE: &str = "QueueUnreachable";
    pub const DEPLOYMENT_FAILING: &str = "DeploymentFailing";
}

/// One condition as the controller sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Observed {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// The conditions to write: `lastTransitionTime` is kept from `previous` when the status of a
/// condition is unchanged and set to `now` otherwise.
pub fn build(
    observed: &[Observed],
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    observed
        .iter()
        .map(|o| {
            let status = status_word(o.status);
            let since = previous
                .iter()
                .find(|p| p.type_ == o.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: o.type_.to_owned(),
                status: status.to_owned(),
                reason: o.reason.to_owned(),
                message: o.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Conditions whose status or reason differ from `previous` (a new condition counts): these
/// are the transitions worth an Event.
pub fn transitions<'a>(observed: &'a [Observed], previous: &[Condition]) -> Vec<&'a Observed> {
    observed
        .iter()
        .filter(|o| {
            !previous.iter().any(|p| {
                p.type_ == o.type_ && p.status == status_word(o.status) && p.reason == o.reason
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
    }

    fn previous() -> Vec<Condition> {
        build(
            &[
                Observed::new(READY, false, reason::WORKERS_STARTING, "0 of 2 pods ready"),
                Observed::new(DEGRADED, false, reason::AS_EXPECTED, ""),
            ],
            &[],
            Some(1),
            at(0),
        )
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let now = build(
            &[
                Observed::new(READY, false, reason::WORKERS_STARTING, "1 of 2 pods ready"),
                Observed::new(DEGRADED, true, reason::QUEUE_UNREACHABLE, "timeout"),
            ],
            &previous(),
            Some(2),
            at(60),
        );
        assert_eq!(now[0].last_transition_time, Time(at(0)));
        assert_eq!(now[0].message, "1 of 2 pods ready");
        assert_eq!(now[0].observed_generation, Some(2));
        assert_eq!(now[1].last_transition_time, Time(at(60)));
        assert_eq!(now[1].status, "True");
    }

    #[test]
    fn only_status_or_reason_changes_are_transitions() {
        let observed = [
            Observed::new(READY, false, reason::WORKERS_STARTING, "1 of 2 pods ready"),
            Observed::new(DEGRADED, true, reason::QUEUE_UNREACHABLE, "timeout"),
            Observed::new(SCALING, false, reason::FIXED_REPLICAS, ""),
        ];
        let changed: Vec<_> = transitions(&observed, &previous())
            .into_iter()
            .map(|o| o.type_)
            .collect();
        assert_eq!(changed, [DEGRADED, SCALING]);
    }
}
