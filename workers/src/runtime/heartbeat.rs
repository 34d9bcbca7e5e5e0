//! The visibility heartbeat: while a message is held, its visibility timeout is renewed when
//! half of it has run out, up to `worker.maxProcessingSeconds` after receipt.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;
use tracing::warn;

use super::ledger::InFlightLedger;
use super::stats::RuntimeStats;
use crate::io::{Queue, SQS_BATCH_LIMIT};

pub struct VisibilityHeartbeat {
    pub source: Arc<dyn Queue>,
    pub ledger: Arc<InFlightLedger>,
    pub visibility: Duration,
    pub stats: RuntimeStats,
    renewing: bool,
}

impl VisibilityHeartbeat {
    pub fn new(
        source: Arc<dyn Queue>,
        ledger: Arc<InFlightLedger>,
        visibility: Duration,
        stats: RuntimeStats,
    ) -> Self {
        Self {
            source,
            ledger,
            visibility,
            stats,
            renewing: false,
        }
    }

    /// How often to look for leases to renew: often enough to catch half a timeout.
    fn tick(&self) -> Duration {
        (self.visibility / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.renewing {
            return;
        }
        let now = Instant::now();
        let due = self.ledger.due_for_renewal(now);
        if due.is_empty() {
            return;
        }
        self.renewing = true;
        let source = self.source.clone();
        let ledger = self.ledger.clone();
        let stats = self.stats.clone();
        let visibility = self.visibility;
        let renew = async move {
            for chunk in due.chunks(SQS_BATCH_LIMIT) {
                let entries: Vec<(String, Duration)> = chunk
                    .iter()
                    .map(|r| (r.receipt_handle.clone(), visibility))
                    .collect();
                match source.change_visibility_batch(&entries).await {
                    Ok(failures) => {
                        for (i, renewal) in chunk.iter().enumerate() {
                            match failures.iter().find(|f| f.index == i) {
                                None => {
                                    ledger.renewed(renewal.ticket, now);
                                    stats.visibility_renewals.inc();
                                }
                                Some(f) => {
                                    warn!(code = %f.code, message = %f.message, "could not renew a message's visibility")
                                }
                            }
                        }
                    }
                    Err(error) => {
                        warn!(%error, "could not renew visibility; retrying on the next beat")
                    }
                }
            }
        };
        ctx.spawn(
            renew
                .into_actor(self)
                .map(|(), act, _| act.renewing = false),
        );
    }
}

impl Actor for VisibilityHeartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick(), |act, ctx| act.beat(ctx));
    }
}
