//! The in-flight ledger: every message this worker holds (received and not yet deleted or
//! released), which bounds polling to free slots and tells the heartbeat whose visibility to
//! renew.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Identifies one held message (one receive of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// What the ledger knows about one held message.
#[derive(Clone, Debug)]
struct Held {
    receipt_handle: String,
    /// When its current visibility lease runs out.
    lease_until: Instant,
    /// After this the heartbeat stops renewing (`maxProcessingSeconds` after receipt).
    renew_until: Instant,
    processing: bool,
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    held: HashMap<Ticket, Held>,
}

/// Messages held by this worker, at most `capacity` at a time.
#[derive(Debug)]
pub struct InFlightLedger {
    capacity: usize,
    visibility: Duration,
    max_processing: Duration,
    state: Mutex<State>,
    changed: Notify,
}

/// A renewal the heartbeat should make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewal {
    pub ticket: Ticket,
    pub receipt_handle: String,
}

impl InFlightLedger {
    pub fn new(capacity: usize, visibility: Duration, max_processing: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            visibility,
            max_processing,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated (every critical
        // section is a single insert/remove/read), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a message received now with the configured visibility.
    pub fn admit(&self, receipt_handle: &str) -> Ticket {
        let now = Instant::now();
        let mut state = self.lock();
        let ticket = Ticket(state.next_ticket);
        state.next_ticket += 1;
        state.held.insert(
            ticket,
            Held {
                receipt_handle: receipt_handle.to_owned(),
                lease_until: now + self.visibility,
                renew_until: now + self.max_processing,
                processing: false,
            },
        );
        ticket
    }

    /// Marks a held message as being processed (for the busy count).
    pub fn start_processing(&self, ticket: Ticket) {
        if let Some(held) = self.lock().held.get_mut(&ticket) {
            held.processing = true;
        }
    }

    /// Forgets a message: deleted, dead-lettered, or made visible again.
    pub fn release(&self, ticket: Ticket) {
        let removed = self.lock().held.remove(&ticket).is_some();
        if removed {
            self.changed.notify_waiters();
        }
    }

    /// Messages held now.
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// Messages being processed now.
    pub fn processing(&self) -> usize {
        self.lock().held.values().filter(|h| h.processing).count()
    }

    /// Slots free for new messages.
    pub fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.held())
    }

    /// Waits until at least one slot is free and returns how many are.
    pub async fn wait_for_free_slots(&self) -> usize {
        loop {
            let notified = self.changed.notified();
            let free = self.free_slots();
            if free > 0 {
                return free;
            }
            notified.await;
        }
    }

    /// Waits until nothing is held.
    pub async fn wait_until_empty(&self) {
        loop {
            let notified = self.changed.notified();
            if self.held() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Messages whose lease has less than half the visibility timeout left and that may still
    /// be renewed: the heartbeat extends these.
    pub fn due_for_renewal(&self, now: Instant) -> Vec<Renewal> {
        let half = self.visibility / 2;
        let mut due: Vec<Renewal> = self
            .lock()
            .held
            .iter()
            .filter(|(_, h)| {
                now < h.renew_until && h.lease_until.saturating_duration_since(now) <= half
            })
            .map(|(ticket, h)| Renewal {
                ticket: *ticket,
                receipt_handle: h.receipt_handle.clone(),
            })
            .collect();
        due.sort_by_key(|r| r.ticket);
        due
    }

    /// Records that a message's lease now runs until `now + visibility`.
    pub fn renewed(&self, ticket: Ticket, now: Instant) {
        if let Some(held) = self.lock().held.get_mut(&ticket) {
            held.lease_until = now + self.visibility;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(capacity: usize) -> InFlightLedger {
        InFlightLedger::new(capacity, Duration::from_secs(30), Duration::from_secs(900))
    }

    #[tokio::test]
    async fn slots_fill_and_free() {
        let ledger = ledger(2);
        assert_eq!(ledger.free_slots(), 2);
        let a = ledger.admit("a");
        let _b = ledger.admit("b");
        assert_eq!(ledger.free_slots(), 0);
        ledger.release(a);
        assert_eq!(ledger.wait_for_free_slots().await, 1);
    }

    #[tokio::test]
    async fn waiting_for_a_slot_wakes_on_release() {
        let ledger = std::sync::Arc::new(ledger(1));
        let ticket = ledger.admit("a");
        let waiter = tokio::spawn({
            let ledger = ledger.clone();
            async move { ledger.wait_for_free_slots().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        ledger.release(ticket);
        assert_eq!(waiter.await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_is_due_at_half_the_timeout_and_stops_at_max_processing() {
        let ledger = InFlightLedger::new(10, Duration::from_secs(30), Duration::from_secs(60));
        let ticket = ledger.admit("r");
        assert!(ledger.due_for_renewal(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(15)).await;
        let due = ledger.due_for_renewal(Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].receipt_handle, "r");
        ledger.renewed(ticket, Instant::now());
        assert!(ledger.due_for_renewal(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(ledger.due_for_renewal(Instant::now()).len(), 1);
        ledger.renewed(ticket, Instant::now());
        tokio::time::advance(Duration::from_secs(31)).await;
        // 61 s after receipt: past maxProcessingSeconds, no more renewals.
        assert!(ledger.due_for_renewal(Instant::now()).is_empty());
    }

    #[tokio::test]
    async fn processing_count_tracks_started_messages() {
        let ledger = ledger(5);
        let a = ledger.admit("a");
        ledger.admit("b");
        ledger.start_processing(a);
        assert_eq!(ledger.processing(), 1);
        assert_eq!(ledger.held(), 2);
        ledger.release(a);
        assert_eq!(ledger.processing(), 0);
    }
}
