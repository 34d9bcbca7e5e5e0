//! The autoscaler's decision: a pure function from one queue-depth observation, the Pipeline's
//! scaling policy and what the scaler remembers to a replica count with a reason a person can
//! read. No clocks and no I/O: time enters only as the observation's timestamp, so the operator
//! and `wharf run` share it and every rule is tested with plain tables.

use jiff::{SignedDuration, Timestamp};
use wharf_crds::pipeline::ScalingPolicy;

/// Polls in a row that must exceed `activationBacklog` before a pipeline at zero starts a pod:
/// one noisy reading of an approximate SQS counter must not start pods.
pub const ACTIVATION_POLLS: u32 = 2;

/// Queue depth as polled (SQS's approximate counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BacklogObservation {
    /// Messages available for retrieval.
    pub visible: u64,
    /// Messages received by a worker and not yet deleted.
    pub in_flight: u64,
    /// Messages sent with a delay that are not visible yet.
    pub delayed: u64,
    /// Messages in the dead-letter queue, when one is configured and could be read.
    pub dead_letter: Option<u64>,
    /// When the queue was polled; the only clock the decision sees.
    pub observed_at: Timestamp,
}

/// A stretch of polls in which the policy asked for fewer pods than are running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerDesire {
    /// The first poll of the stretch.
    pub since: Timestamp,
    /// The highest count asked for during the stretch: scaling down goes only this far, so a
    /// dip in the middle of the window does not remove pods that a later poll needs again.
    pub highest: i32,
}

/// What the scaler remembers between polls of one Pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalerState {
    /// Replicas the worker Deployment has now.
    pub current_replicas: i32,
    /// Consecutive polls whose backlog exceeded `activationBacklog`.
    pub polls_above_activation: u32,
    /// Set while the policy keeps asking for fewer pods than `current_replicas`.
    pub lower_desire: Option<LowerDesire>,
}

impl ScalerState {
    /// A scaler that has not polled yet, for a Deployment with `replicas` pods.
    pub fn starting_at(replicas: i32) -> Self {
        Self {
            current_replicas: replicas,
            polls_above_activation: 0,
            lower_desire: None,
        }
    }
}

/// The outcome of one poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleDecision {
    /// Replicas the Deployment should have after this poll.
    pub replicas: i32,
    /// Why, e.g. `backlog 230 > 4 × 50 → 5 replicas`.
    pub reason: String,
    /// What to remember for the next poll (its `current_replicas` is `replicas`).
    pub next: ScalerState,
}

impl ScaleDecision {
    /// Whether this decision changes the replica count.
    pub fn changes(&self, previous: &ScalerState) -> bool {
        self.replicas != previous.current_replicas
    }
}

/// The backlog the policy scales on: visible messages, plus in-flight and delayed ones when
/// the policy counts them.
pub fn backlog(policy: &ScalingPolicy, observation: &BacklogObservation) -> u64 {
    let mut backlog = observation.visible;
    if policy.include_in_flight {
        backlog = backlog.saturating_add(observation.in_flight);
    }
    if policy.include_delayed {
        backlog = backlog.saturating_add(observation.delayed);
    }
    backlog
}

/// Decides the replica count for one observation.
///
/// desired = ceil(backlog / targetBacklogPerReplica), kept within [minReplicas, maxReplicas];
/// a pipeline at zero starts only after [`ACTIVATION_POLLS`] polls above `activationBacklog`;
/// fewer pods only after `scaleDownStabilizationSeconds` of lower desire (a lowered
/// `maxReplicas` applies at once); zero pods only when
/// nothing is visible or in flight (a message being processed always keeps one pod).
pub fn decide(
    policy: &ScalingPolicy,
    observation: &BacklogObservation,
    state: &ScalerState,
) -> ScaleDecision {
    let current = state.current_replicas.max(0);
    let target = i64::from(policy.target_backlog_per_replica.max(1));
    let min = policy.min_replicas.max(0);
    // An invalid policy (max < min) is rejected by validation; never panic on one here.
    let max = policy.max_replicas.max(min);
    let backlog = backlog(policy, observation);

    let polls_above_activation = if backlog > activation_threshold(policy) {
        state.polls_above_activation.saturating_add(1)
    } else {
        0
    };

    let wanted = wanted_replicas(backlog, target);
    let mut desired = wanted.max(min).min(max);
    let busy = observation.visible > 0 || observation.in_flight > 0;
    let keeps_one = desired == 0 && busy;
    if keeps_one {
        // A message being processed needs a pod to finish on, whatever maxReplicas says.
        desired = 1;
    }

    let hold = |reason: String, lower_desire: Option<LowerDesire>| ScaleDecision {
        replicas: current,
        reason,
        next: ScalerState {
            current_replicas: current,
            polls_above_activation,
            lower_desire,
        },
    };
    let change = |replicas: i32, reason: String| ScaleDecision {
        replicas,
        reason,
        next: ScalerState {
            current_replicas: replicas,
            polls_above_activation,
            lower_desire: None,
        },
    };

    // From zero, with the floor at zero: only a backlog that persists starts pods.
    if current == 0 && min == 0 && desired > 0 {
        let activation = activation_threshold(policy);
        if backlog <= activation {
            return hold(
                format!("backlog {backlog} ≤ activation {activation}; staying at 0 replicas"),
                None,
            );
        }
        if polls_above_activation < ACTIVATION_POLLS {
            return hold(
                format!(
                    "backlog {backlog} > activation {activation} on {polls_above_activation} of \
                     {ACTIVATION_POLLS} polls; staying at 0 replicas"
                ),
                None,
            );
        }
        return change(
            desired,
            format!(
                "backlog {backlog} > activation {activation} on {ACTIVATION_POLLS} polls → \
                 {desired} {}",
                replicas_word(desired)
            ),
        );
    }

    if desired > current {
        let reason = if wanted > current {
            format!(
                "backlog {backlog} > {current} × {target} → {desired} {}{}",
                replicas_word(desired),
                if wanted > max { " (maxReplicas)" } else { "" }
            )
        } else {
            format!(
                "minReplicas {min} > {current} → {desired} {}",
                replicas_word(desired)
            )
        };
        return change(desired, reason);
    }

    if desired == current {
        return hold(
            format!(
                "backlog {backlog} needs {desired} {} at {target} each; no change",
                replicas_word(desired)
            ),
            None,
        );
    }

    // A lowered maxReplicas is a limit, not a wish: it applies at once.
    if current > max {
        return change(
            desired,
            format!(
                "maxReplicas {max} < {current} → {desired} {}",
                replicas_word(desired)
            ),
        );
    }

    // desired < current: wait out the stabilization window, remembering the highest desire.
    let lower = match state.lower_desire {
        Some(lower) => LowerDesire {
            since: lower.since,
            highest: lower.highest.max(desired),
        },
        None => LowerDesire {
            since: observation.observed_at,
            highest: desired,
        },
    };
    let waited = observation.observed_at.duration_since(lower.since);
    let window =
        SignedDuration::from_secs(i64::from(policy.scale_down_stabilization_seconds.max(0)));
    if waited < window {
        return hold(
            format!(
                "backlog {backlog} needs {desired} {} for {}s of {}s stabilization; holding {current}",
                replicas_word(desired),
                waited.as_secs().max(0),
                window.as_secs()
            ),
            Some(lower),
        );
    }
    let to = lower.highest;
    let reason = if to == 0 {
        format!(
            "queue empty (0 visible, 0 in flight) for {}s → 0 replicas",
            waited.as_secs().max(0)
        )
    } else if keeps_one && to == 1 {
        format!(
            "backlog {backlog} with {} in flight for {}s → 1 replica",
            observation.in_flight,
            waited.as_secs().max(0)
        )
    } else {
        format!(
            "backlog {backlog} < {current} × {target} for {}s → {to} {}",
            waited.as_secs().max(0),
            replicas_word(to)
        )
    };
    change(to, reason)
}

/// `activationBacklog`, never negative.
fn activation_threshold(policy: &ScalingPolicy) -> u64 {
    u64::try_from(policy.activation_backlog).unwrap_or(0)
}

/// ceil(backlog / target), saturating at `i32::MAX` (callers clamp to `maxReplicas`).
fn wanted_replicas(backlog: u64, target: i64) -> i32 {
    let target = u64::try_from(target).unwrap_or(1).max(1);
    i32::try_from(backlog.div_ceil(target)).unwrap_or(i32::MAX)
}

fn replicas_word(n: i32) -> &'static str {
    if n == 1 { "replica" } else { "replicas" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
    }

    fn observation(visible: u64, in_flight: u64, delayed: u64, seconds: i64) -> BacklogObservation {
        BacklogObservation {
            visible,
            in_flight,
            delayed,
            dead_letter: None,
            observed_at: at(seconds),
        }
    }

    fn policy() -> ScalingPolicy {
        ScalingPolicy {
            min_replicas: 0,
            max_replicas: 10,
            target_backlog_per_replica: 50,
            activation_backlog: 0,
            poll_interval_seconds: 5,
            scale_down_stabilization_seconds: 60,
            include_in_flight: true,
            include_delayed: false,
        }
    }

    fn state(current: i32, polls: u32, lower: Option<(i64, i32)>) -> ScalerState {
        ScalerState {
            current_replicas: current,
            polls_above_activation: polls,
            lower_desire: lower.map(|(since, highest)| LowerDesire {
                since: at(since),
                highest,
            }),
        }
    }

    struct Case {
        name: &'static str,
        policy: ScalingPolicy,
        observation: BacklogObservation,
        state: ScalerState,
        replicas: i32,
        reason: &'static str,
    }

    fn cases() -> Vec<Case> {
        let p = policy();
        vec![
            Case {
                name: "scales up to ceil(backlog / target)",
                policy: p.clone(),
                observation: observation(200, 30, 0, 0),
                state: state(4, 5, None),
                replicas: 5,
                reason: "backlog 230 > 4 × 50 → 5 replicas",
            },
            Case {
                name: "in-flight messages are not counted when the policy says so",
                policy: ScalingPolicy {
                    include_in_flight: false,
                    ..p.clone()
                },
                observation: observation(200, 300, 0, 0),
                state: state(4, 5, None),
                replicas: 4,
                reason: "backlog 200 needs 4 replicas at 50 each; no change",
            },
            Case {
                name: "delayed messages count when the policy says so",
                policy: ScalingPolicy {
                    include_delayed: true,
                    ..p.clone()
                },
                observation: observation(100, 0, 60, 0),
                state: state(2, 1, None),
                replicas: 4,
                reason: "backlog 160 > 2 × 50 → 4 replicas",
            },
            Case {
                name: "delayed messages are ignored by default",
                policy: p.clone(),
                observation: observation(100, 0, 60, 0),
                state: state(2, 1, None),
                replicas: 2,
                reason: "backlog 100 needs 2 replicas at 50 each; no change",
            },
            Case {
                name: "never more than maxReplicas",
                policy: p.clone(),
                observation: observation(100_000, 0, 0, 0),
                state: state(3, 5, None),
                replicas: 10,
                reason: "backlog 100000 > 3 × 50 → 10 replicas (maxReplicas)",
            },
            Case {
                name: "minReplicas is a floor even with an empty queue",
                policy: ScalingPolicy {
                    min_replicas: 2,
                    ..p.clone()
                },
                observation: observation(0, 0, 0, 0),
                state: state(0, 0, None),
                replicas: 2,
                reason: "minReplicas 2 > 0 → 2 replicas",
            },
            Case {
                name: "one poll above activation does not start a pod",
                policy: p.clone(),
                observation: observation(12, 0, 0, 0),
                state: state(0, 0, None),
                replicas: 0,
                reason: "backlog 12 > activation 0 on 1 of 2 polls; staying at 0 replicas",
            },
            Case {
                name: "the second consecutive poll above activation starts pods",
                policy: p.clone(),
                observation: observation(120, 0, 0, 5),
                state: state(0, 1, None),
                replicas: 3,
                reason: "backlog 120 > activation 0 on 2 polls → 3 replicas",
            },
            Case {
                name: "a backlog at the activation threshold keeps zero",
                policy: ScalingPolicy {
                    activation_backlog: 20,
                    ..p.clone()
                },
                observation: observation(20, 0, 0, 5),
                state: state(0, 1, None),
                replicas: 0,
                reason: "backlog 20 ≤ activation 20; staying at 0 replicas",
            },
            Case {
                name: "an empty queue at zero stays at zero",
                policy: p.clone(),
                observation: observation(0, 0, 0, 5),
                state: state(0, 0, None),
                replicas: 0,
                reason: "backlog 0 needs 0 replicas at 50 each; no change",
            },
            Case {
                name: "lower desire waits for the stabilization window",
                policy: p.clone(),
                observation: observation(40, 0, 0, 30),
                state: state(5, 3, Some((0, 1))),
                replicas: 5,
                reason: "backlog 40 needs 1 replica for 30s of 60s stabilization; holding 5",
            },
            Case {
                name: "lower desire that outlasts the window scales down to the highest desire in it",
                policy: p.clone(),
                observation: observation(40, 0, 0, 60),
                state: state(5, 3, Some((0, 3))),
                replicas: 3,
                reason: "backlog 40 < 5 × 50 for 60s → 3 replicas",
            },
            Case {
                name: "a zero stabilization window scales down at once",
                policy: ScalingPolicy {
                    scale_down_stabilization_seconds: 0,
                    ..p.clone()
                },
                observation: observation(40, 0, 0, 0),
                state: state(5, 3, None),
                replicas: 1,
                reason: "backlog 40 < 5 × 50 for 0s → 1 replica",
            },
            Case {
                name: "an empty queue scales to zero after the window",
                policy: p.clone(),
                observation: observation(0, 0, 0, 90),
                state: state(2, 0, Some((20, 0))),
                replicas: 0,
                reason: "queue empty (0 visible, 0 in flight) for 70s → 0 replicas",
            },
            Case {
                name: "a message in flight keeps one pod even when in-flight is not counted",
                policy: ScalingPolicy {
                    include_in_flight: false,
                    scale_down_stabilization_seconds: 0,
                    ..p.clone()
                },
                observation: observation(0, 3, 0, 0),
                state: state(2, 0, None),
                replicas: 1,
                reason: "backlog 0 with 3 in flight for 0s → 1 replica",
            },
            Case {
                name: "never zero while a message is in flight",
                policy: ScalingPolicy {
                    include_in_flight: false,
                    ..p.clone()
                },
                observation: observation(0, 1, 0, 100),
                state: state(1, 0, Some((0, 1))),
                replicas: 1,
                reason: "backlog 0 needs 1 replica at 50 each; no change",
            },
            Case {
                name: "a lowered maxReplicas applies without waiting for the window",
                policy: ScalingPolicy {
                    max_replicas: 3,
                    ..p.clone()
                },
                observation: observation(1000, 0, 0, 0),
                state: state(8, 5, None),
                replicas: 3,
                reason: "maxReplicas 3 < 8 → 3 replicas",
            },
            Case {
                name: "an inverted policy does not panic and respects minReplicas",
                policy: ScalingPolicy {
                    min_replicas: 4,
                    max_replicas: 2,
                    ..p.clone()
                },
                observation: observation(1000, 0, 0, 0),
                state: state(1, 0, None),
                replicas: 4,
                reason: "backlog 1000 > 1 × 50 → 4 replicas (maxReplicas)",
            },
        ]
    }

    #[test]
    fn decisions_follow_the_policy() {
        for case in cases() {
            let decision = decide(&case.policy, &case.observation, &case.state);
            assert_eq!(decision.replicas, case.replicas, "{}", case.name);
            assert_eq!(decision.reason, case.reason, "{}", case.name);
            assert_eq!(
                decision.next.current_replicas, decision.replicas,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn activation_counter_resets_when_the_backlog_drops() {
        let p = policy();
        let first = decide(&p, &observation(5, 0, 0, 0), &ScalerState::starting_at(0));
        assert_eq!((first.replicas, first.next.polls_above_activation), (0, 1));
        let empty = decide(&p, &observation(0, 0, 0, 5), &first.next);
        assert_eq!((empty.replicas, empty.next.polls_above_activation), (0, 0));
        let again = decide(&p, &observation(5, 0, 0, 10), &empty.next);
        assert_eq!(again.replicas, 0, "one poll after a reset is not enough");
        let started = decide(&p, &observation(5, 0, 0, 15), &again.next);
        assert_eq!(started.replicas, 1);
    }

    #[test]
    fn stabilization_window_restarts_when_desire_recovers() {
        let p = policy();
        let s = ScalerState::starting_at(4);
        let low = decide(&p, &observation(10, 0, 0, 0), &s);
        assert_eq!(low.replicas, 4);
        let since = low.next.lower_desire.map(|l| l.since);
        assert_eq!(since, Some(at(0)));
        let back = decide(&p, &observation(200, 0, 0, 30), &low.next);
        assert_eq!(back.replicas, 4);
        assert_eq!(back.next.lower_desire, None);
        let low_again = decide(&p, &observation(10, 0, 0, 70), &back.next);
        assert_eq!(
            low_again.replicas, 4,
            "the window starts again, it does not count from the first dip"
        );
        let down = decide(&p, &observation(10, 0, 0, 130), &low_again.next);
        assert_eq!(down.replicas, 1);
        assert!(down.changes(&low_again.next));
    }

    #[test]
    fn highest_desire_in_the_window_is_remembered() {
        let p = policy();
        let first = decide(&p, &observation(10, 0, 0, 0), &ScalerState::starting_at(6));
        let second = decide(&p, &observation(220, 0, 0, 20), &first.next);
        let third = decide(&p, &observation(0, 0, 0, 40), &second.next);
        assert_eq!(third.next.lower_desire.map(|l| l.highest), Some(5));
        let fourth = decide(&p, &observation(0, 0, 0, 60), &third.next);
        assert_eq!(fourth.replicas, 5);
    }

    #[test]
    fn backlog_sums_the_counted_parts() {
        let all = ScalingPolicy {
            include_in_flight: true,
            include_delayed: true,
            ..policy()
        };
        assert_eq!(backlog(&all, &observation(1, 2, 4, 0)), 7);
        let visible_only = ScalingPolicy {
            include_in_flight: false,
            include_delayed: false,
            ..policy()
        };
        assert_eq!(backlog(&visible_only, &observation(1, 2, 4, 0)), 1);
        assert_eq!(
            backlog(&all, &observation(u64::MAX, 1, 1, 0)),
            u64::MAX,
            "saturates rather than overflowing"
        );
    }
}
