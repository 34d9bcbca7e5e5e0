//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one runs the controllers and scaler loops.
//!
//! Every write carries the `resourceVersion` it read, so two candidates racing for the Lease
//! cannot both win: the API server rejects the slower one with 409 Conflict. Expiry is judged
//! by how long this process has seen the Lease record unchanged (as client-go does), never by
//! comparing its own clock with another node's `renewTime`.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Timing of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Name of the Lease object.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease not renewed stays with its holder.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why an election step failed; the caller retries after the retry period.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("Lease `{name}`: {action} failed: {source}")]
    Api {
        name: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease (newly or still).
    Leading,
    /// Another replica holds a live Lease.
    Following { holder: String },
}

/// What the Lease says and when this process first saw it say so.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observation {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    seen_at: Timestamp,
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// No Lease exists: create one held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// It is free or expired: take it over.
    TakeOver,
    /// Someone else holds a live Lease.
    Follow { holder: String },
}

/// Decides the step from the Lease's holder, how long its record has been unchanged (as seen
/// here), and the lease duration. Pure, so the rules are tested without a cluster.
pub fn step(
    lease_exists: bool,
    holder: Option<&str>,
    me: &str,
    unchanged_for: SignedDuration,
    lease_duration: Duration,
) -> Step {
    if !lease_exists {
        return Step::Create;
    }
    match holder.filter(|h| !h.is_empty()) {
        Some(h) if h == me => Step::Renew,
        None => Step::TakeOver,
        Some(h) => {
            let duration = SignedDuration::try_from(lease_duration).unwrap_or(SignedDuration::MAX);
            if unchanged_for >= duration {
                Step::TakeOver
            } else {
                Step::Follow {
                    holder: h.to_owned(),
                }
            }
        }
    }
}

/// One candidate's view of the election.
pub struct LeaderElector {
    leases: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observation>,
}

impl LeaderElector {
    pub fn new(leases: Api<Lease>, settings: LeaseSettings) -> Self {
        Self {
            leases,
            settings,
            observed: None,
        }
    }

    fn api_error(&self, action: &'static str) -> impl FnOnce(kube::Error) -> LeaseError {
        let name = self.settings.name.clone();
        move |source| LeaseError::Api {
            name,
            action,
            source,
        }
    }

    /// Reads the Lease and acquires, renews or follows. A lost race (409) means following.
    pub async fn try_acquire_or_renew(&mut self, now: Timestamp) -> Result<Attempt, LeaseError> {
        let current = self
            .leases
            .get_opt(&self.settings.name)
            .await
            .map_err(self.api_error("reading"))?;
        let spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let observation = Observation {
            holder: spec.holder_identity.clone(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            seen_at: now,
        };
        // The record is "unchanged" since we first saw this exact holder and renew time.
        let seen_at = match &self.observed {
            Some(o) if o.holder == observation.holder && o.renew_time == observation.renew_time => {
                o.seen_at
            }
            _ => now,
        };
        self.observed = Some(Observation {
            seen_at,
            ..observation
        });
        let me = self.settings.identity.clone();
        let lease_seconds =
            i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let decided = step(
            current.is_some(),
            spec.holder_identity.as_deref(),
            &me,
            now.duration_since(seen_at),
            self.settings.lease_duration,
        );
        let result = match decided {
            Step::Follow { holder } => return Ok(Attempt::Following { holder }),
            Step::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(me.clone()),
                        lease_duration_seconds: Some(lease_seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.leases.create(&PostParams::default(), &lease).await
            }
            Step::Renew | Step::TakeOver => {
                let Some(mut lease) = current else {
                    return Ok(Attempt::Following {
                        holder: String::new(),
                    });
                };
                let taking_over = decided == Step::TakeOver;
                let mut spec = spec;
                if taking_over {
                    info!(lease = %self.settings.name, previous = ?spec.holder_identity, "taking over the Lease");
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions =
                        Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
                }
                spec.holder_identity = Some(me.clone());
                spec.lease_duration_seconds = Some(lease_seconds);
                spec.renew_time = Some(MicroTime(now));
                lease.spec = Some(spec);
                // metadata.resourceVersion is kept: the write fails with 409 if anyone else
                // wrote the Lease since we read it.
                self.leases
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => {
                self.observed = Some(Observation {
                    holder: Some(me),
                    renew_time: Some(now),
                    seen_at: now,
                });
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following {
                holder: String::new(),
            }),
            Err(source) => Err(LeaseError::Api {
                name: self.settings.name.clone(),
                action: "writing",
                source,
            }),
        }
    }

    /// Gives the Lease up so a standby takes over at once instead of after it expires.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.settings.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        if let Err(error) = self
            .leases
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            warn!(lease = %self.settings.name, %error, "cannot release the Lease; it expires on its own");
        }
    }

    /// Campaigns until `shutdown`; while leading, runs `lead` with a token that is cancelled
    /// when leadership is lost (renewals failing past the renew deadline) or on shutdown, and
    /// waits for it to finish before campaigning again. `on_change` hears every change of role.
    pub async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        mut lead: F,
        on_change: impl Fn(bool) + Send,
    ) where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let retry = self.settings.retry_period;
        while !shutdown.is_cancelled() {
            // Follower: try until we lead.
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(Attempt::Leading) => {}
                Ok(Attempt::Following { .. }) => {
                    if sleep_or_stop(&shutdown, retry).await {
                        break;
                    }
                    continue;
                }
                Err(error) => {
                    warn!(%error, "leader election");
                    if sleep_or_stop(&shutdown, retry).await {
                        break;
                    }
                    continue;
                }
            }
            info!(lease = %self.settings.name, identity = %self.settings.identity, "leading");
            on_change(true);
            let leading = shutdown.child_token();
            let mut work = tokio::spawn(lead(leading.clone()));
            let mut last_renewal = tokio::time::Instant::now();
            let mut work_ended = false;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    ended = &mut work => {
                        // The controllers stopped on their own: step down so that this
                        // replica (or another) starts them afresh instead of holding the
                        // Lease while doing nothing.
                        warn!(?ended, "leader work ended while leading; stepping down");
                        work_ended = true;
                        break;
                    }
                    () = tokio::time::sleep(retry) => {}
                }
                let attempt = tokio::time::timeout(
                    self.settings.renew_deadline,
                    self.try_acquire_or_renew(Timestamp::now()),
                )
                .await;
                match attempt {
                    Ok(Ok(Attempt::Leading)) => last_renewal = tokio::time::Instant::now(),
                    Ok(Ok(Attempt::Following { holder })) => {
                        warn!(%holder, "lost the Lease");
                        break;
                    }
                    Ok(Err(error)) => warn!(%error, "cannot renew the Lease"),
                    Err(_) => warn!("renewing the Lease timed out"),
                }
                if last_renewal.elapsed() >= self.settings.renew_deadline {
                    warn!("no renewal within the renew deadline; stepping down");
                    break;
                }
            }
            leading.cancel();
            if !work_ended && let Err(error) = work.await {
                warn!(%error, "leader work ended abnormally");
            }
            on_change(false);
            info!(lease = %self.settings.name, "stopped leading");
        }
        self.release().await;
    }
}

/// Sleeps for `period`; true when `shutdown` came first.
async fn sleep_or_stop(shutdown: &CancellationToken, period: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(period) => false,
    }
}

#[cfg(test)]
mod tests;
