//! One SQS-like queue: messages in send order with visibility timeouts, receive counts, receipt
//! handles valid for one receive, FIFO message groups and deduplication. Every rule takes the
//! current time as an argument, so it is tested without waiting; `queue_port` adds long polling
//! and `queue_registry` moves messages to dead-letter queues.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::io::{
    EntryFailure, IoError, IoErrorKind, MessageAttributes, OutgoingMessage, QueueDepth,
    ReceivedMessage, SQS_MESSAGE_BYTES,
};

/// Longest visibility timeout SQS accepts.
pub(super) const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a FIFO deduplication id suppresses repeats.
const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A message still in a queue, visible or not, as the inspection methods report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    pub body: String,
    pub attributes: MessageAttributes,
    pub group_id: Option<String>,
    /// How many times it has been received.
    pub receive_count: u32,
    /// Whether a receive could return it now (false while it is in flight).
    pub visible: bool,
}

/// Why one entry of a batch was refused, in SQS's error codes; never worth retrying as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn invalid_handle(handle: &str) -> Self {
        Self::new(
            "ReceiptHandleIsInvalid",
            format!(
                "receipt handle `{handle}` is not the current one of a message in this queue \
                 (a later receive replaced it, or it came from another queue)"
            ),
        )
    }

    pub(super) fn into_failure(self, index: usize) -> EntryFailure {
        EntryFailure {
            index,
            code: self.code.to_owned(),
            message: self.message,
            retryable: false,
        }
    }

    pub(super) fn into_error(self, operation: &'static str, resource: &str) -> IoError {
        IoError::new(
            operation,
            resource,
            IoErrorKind::Rejected,
            format!("{}: {}", self.code, self.message),
        )
    }
}

/// A message in the queue.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    message_id: String,
    body: String,
    attributes: MessageAttributes,
    group_id: Option<String>,
    sent_at: SystemTime,
    receive_count: u32,
    /// Visible from this instant on; later than now while the message is in flight.
    visible_at: Instant,
    /// The handle the latest receive issued; only it deletes or changes visibility.
    receipt: Option<String>,
}

impl Entry {
    fn in_flight(&self, now: Instant) -> bool {
        self.visible_at > now
    }
}

/// Where messages go after `max_receives` receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RedrivePolicy {
    pub dead_letter_url: String,
    pub max_receives: u32,
}

/// What one receive took from the queue.
#[derive(Debug, Default)]
pub(super) struct Receipt {
    pub messages: Vec<ReceivedMessage>,
    /// Messages received `max_receives` times already, removed for the dead-letter queue.
    pub dead_letters: Vec<Entry>,
}

/// One queue's messages and rules.
#[derive(Debug)]
pub(super) struct QueueState {
    fifo: bool,
    /// Distinguishes this queue's receipt handles from any other queue's.
    token: String,
    next_seq: u64,
    /// By send order (a moved-in message counts as sent when it arrives).
    messages: BTreeMap<u64, Entry>,
    /// FIFO deduplication id → (message id it produced, end of its window).
    dedup: HashMap<String, (String, Instant)>,
    redrive: Option<RedrivePolicy>,
    /// Woken whenever a receive waiting on this queue might now succeed.
    changed: Arc<Notify>,
}

impl QueueState {
    /// An empty queue; FIFO when its URL ends in `.fifo`, as SQS names them.
    pub(super) fn new(url: &str) -> Self {
        Self {
            fifo: url.ends_with(".fifo"),
            token: uuid::Uuid::new_v4().simple().to_string(),
            next_seq: 0,
            messages: BTreeMap::new(),
            dedup: HashMap::new(),
            redrive: None,
            changed: Arc::new(Notify::new()),
        }
    }

    pub(super) fn is_fifo(&self) -> bool {
        self.fifo
    }

    pub(super) fn redrive(&self) -> Option<&RedrivePolicy> {
        self.redrive.as_ref()
    }

    pub(super) fn set_redrive(&mut self, policy: RedrivePolicy) {
        self.redrive = Some(policy);
    }

    pub(super) fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }

    /// Adds a message; returns its id (for a deduplicated FIFO send, the original's id, and
    /// nothing is added, as SQS does).
    pub(super) fn send(
        &mut self,
        message: &OutgoingMessage,
        now: Instant,
    ) -> Result<String, Refusal> {
        let size = message.body.len()
            + message
                .attributes
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>();
        if size > SQS_MESSAGE_BYTES {
            return Err(Refusal::new(
                "InvalidParameterValue",
                format!(
                    "the message is {size} bytes (body and attributes); the limit is \
                     {SQS_MESSAGE_BYTES}: store large payloads in S3 and send a reference"
                ),
            ));
        }
        if message.body.is_empty() {
            return Err(Refusal::new(
                "InvalidParameterValue",
                "the message body is empty; SQS requires at least one character",
            ));
        }
        if self.fifo && message.group_id.is_none() {
            return Err(Refusal::new(
                "MissingParameter",
                "a FIFO queue needs a message group id on every message",
            ));
        }
        if !self.fifo && message.deduplication_id.is_some() {
            return Err(Refusal::new(
                "InvalidParameterValue",
                "a deduplication id is only valid for FIFO queues; drop it or send to a \
                 `.fifo` queue",
            ));
        }
        if let Some(dedup_id) = &message.deduplication_id {
            self.dedup.retain(|_, (_, until)| *until > now);
            if let Some((original, _)) = self.dedup.get(dedup_id) {
                return Ok(original.clone());
            }
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        if let Some(dedup_id) = &message.deduplication_id {
            self.dedup
                .insert(dedup_id.clone(), (message_id.clone(), now + DEDUP_WINDOW));
        }
        self.push(Entry {
            message_id: message_id.clone(),
            body: message.body.clone(),
            attributes: message.attributes.clone(),
            group_id: message.group_id.clone(),
            sent_at: SystemTime::now(),
            receive_count: 0,
            visible_at: now,
            receipt: None,
        });
        Ok(message_id)
    }

    /// Takes in a message redriven from another queue: same id, body, attributes, group, send
    /// time and receive count (SQS keeps them), visible at once.
    pub(super) fn accept_moved(&mut self, mut entry: Entry, now: Instant) {
        entry.visible_at = now;
        entry.receipt = None;
        self.push(entry);
    }

    fn push(&mut self, entry: Entry) {
        self.messages.insert(self.next_seq, entry);
        self.next_seq += 1;
        self.changed.notify_waiters();
    }

    /// Receives up to `max` visible messages and hides them for `visibility`.
    ///
    /// With `redrive_max` set, a message already received that many times is removed for the
    /// dead-letter queue instead of being returned. In a FIFO queue a group with a message in
    /// flight returns nothing, so each group is processed in order.
    pub(super) fn receive(
        &mut self,
        max: usize,
        visibility: Duration,
        redrive_max: Option<u32>,
        now: Instant,
    ) -> Receipt {
        let blocked_groups: HashSet<String> = if self.fifo {
            self.messages
                .values()
                .filter(|e| e.in_flight(now))
                .filter_map(|e| e.group_id.clone())
                .collect()
        } else {
            HashSet::new()
        };
        let hidden_until = now.checked_add(visibility).unwrap_or(now + MAX_VISIBILITY);
        let mut receipt = Receipt::default();
        let mut to_dead_letter = Vec::new();
        for (&seq, entry) in self.messages.iter_mut() {
            if receipt.messages.len() >= max {
                break;
            }
            if entry.in_flight(now)
                || entry
                    .group_id
                    .as_ref()
                    .is_some_and(|g| blocked_groups.contains(g))
            {
                continue;
            }
            if redrive_max.is_some_and(|limit| entry.receive_count >= limit) {
                to_dead_letter.push(seq);
                continue;
            }
            let handle = format!("{}:{seq}:{}", self.token, uuid::Uuid::new_v4().simple());
            entry.receive_count = entry.receive_count.saturating_add(1);
            entry.visible_at = hidden_until;
            entry.receipt = Some(handle.clone());
            receipt.messages.push(ReceivedMessage {
                message_id: entry.message_id.clone(),
                receipt_handle: handle,
                body: entry.body.clone(),
                attributes: entry.attributes.clone(),
                receive_count: entry.receive_count,
                sent_at: Some(entry.sent_at),
                group_id: entry.group_id.clone(),
            });
        }
        receipt.dead_letters = to_dead_letter
            .into_iter()
            .filter_map(|seq| self.messages.remove(&seq))
            .collect();
        receipt
    }

    /// The message whose current receipt handle is `handle`: `Ok(None)` when this queue issued
    /// the handle but the message is gone (deleted or redriven), an error when the handle is
    /// not this queue's or not the message's latest.
    fn holder(&self, handle: &str) -> Result<Option<u64>, Refusal> {
        let mut parts = handle.split(':');
        let (Some(token), Some(seq), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::invalid_handle(handle));
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return Err(Refusal::invalid_handle(handle));
        };
        if token != self.token || seq >= self.next_seq {
            return Err(Refusal::invalid_handle(handle));
        }
        match self.messages.get(&seq) {
            None => Ok(None),
            Some(entry) if entry.receipt.as_deref() == Some(handle) => Ok(Some(seq)),
            Some(_) => Err(Refusal::invalid_handle(handle)),
        }
    }

    /// Deletes the message received with `handle`. Deleting a message that is gone already
    /// succeeds, as it does in SQS.
    pub(super) fn delete(&mut self, handle: &str) -> Result<(), Refusal> {
        if let Some(seq) = self.holder(handle)? {
            self.messages.remove(&seq);
            // A FIFO group may be unblocked now.
            self.changed.notify_waiters();
        }
        Ok(())
    }

    /// Hides the in-flight message received with `handle` for `timeout` from now (0: visible now).
    pub(super) fn change_visibility(
        &mut self,
        handle: &str,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), Refusal> {
        if timeout > MAX_VISIBILITY {
            return Err(Refusal::new(
                "InvalidParameterValue",
                format!(
                    "visibility timeout {}s is over the 43200s (12h) limit",
                    timeout.as_secs()
                ),
            ));
        }
        let Some(seq) = self.holder(handle)? else {
            return Err(Refusal::invalid_handle(handle));
        };
        let Some(entry) = self.messages.get_mut(&seq) else {
            return Err(Refusal::invalid_handle(handle));
        };
        if !entry.in_flight(now) {
            return Err(Refusal::new(
                "MessageNotInflight",
                "the message is visible again (its visibility timeout ran out); receive it again",
            ));
        }
        entry.visible_at = now + timeout;
        self.changed.notify_waiters();
        Ok(())
    }

    pub(super) fn depth(&self, now: Instant) -> QueueDepth {
        let in_flight = self.messages.values().filter(|e| e.in_flight(now)).count() as u64;
        QueueDepth {
            visible: self.messages.len() as u64 - in_flight,
            in_flight,
            delayed: 0,
        }
    }

    /// When the next in-flight message becomes visible again, if any is in flight.
    pub(super) fn next_release(&self, now: Instant) -> Option<Instant> {
        self.messages
            .values()
            .map(|e| e.visible_at)
            .filter(|&at| at > now)
            .min()
    }

    /// Every message, visible or not, in send order.
    pub(super) fn snapshot(&self, now: Instant) -> Vec<QueuedMessage> {
        self.messages
            .values()
            .map(|e| QueuedMessage {
                message_id: e.message_id.clone(),
                body: e.body.clone(),
                attributes: e.attributes.clone(),
                group_id: e.group_id.clone(),
                receive_count: e.receive_count,
                visible: !e.in_flight(now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: &str = "https://sqs.local/000000000000/q";
    const FIFO: &str = "https://sqs.local/000000000000/q.fifo";
    const VIS: Duration = Duration::from_secs(30);

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            ..OutgoingMessage::default()
        }
    }

    fn grouped(body: &str, group: &str, dedup: Option<&str>) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            group_id: Some(group.to_owned()),
            deduplication_id: dedup.map(str::to_owned),
            ..OutgoingMessage::default()
        }
    }

    fn bodies(receipt: &Receipt) -> Vec<&str> {
        receipt.messages.iter().map(|m| m.body.as_str()).collect()
    }

    #[test]
    fn receive_returns_messages_in_send_order_and_hides_them() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        for body in ["a", "b", "c"] {
            queue.send(&message(body), now).expect("sent");
        }
        let first = queue.receive(2, VIS, None, now);
        assert_eq!(bodies(&first), ["a", "b"]);
        assert!(first.messages.iter().all(|m| m.receive_count == 1));
        assert!(first.messages.iter().all(|m| m.sent_at.is_some()));
        let second = queue.receive(10, VIS, None, now);
        assert_eq!(bodies(&second), ["c"]);
        assert_eq!(
            queue.depth(now),
            QueueDepth {
                visible: 0,
                in_flight: 3,
                delayed: 0
            }
        );
        assert!(queue.receive(10, VIS, None, now).messages.is_empty());
    }

    #[test]
    fn an_expired_visibility_makes_the_message_receivable_with_a_higher_count() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        queue.send(&message("a"), now).expect("sent");
        queue.receive(1, VIS, None, now);
        assert!(
            queue
                .receive(1, VIS, None, now + VIS - Duration::from_millis(1))
                .messages
                .is_empty()
        );
        assert_eq!(queue.next_release(now), Some(now + VIS));
        let again = queue.receive(1, VIS, None, now + VIS);
        assert_eq!(again.messages[0].receive_count, 2);
        assert_eq!(queue.snapshot(now + VIS)[0].receive_count, 2);
    }

    #[test]
    fn a_stale_receipt_handle_neither_deletes_nor_changes_visibility() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        queue.send(&message("a"), now).expect("sent");
        let old = queue
            .receive(1, VIS, None, now)
            .messages
            .remove(0)
            .receipt_handle;
        let later = now + VIS;
        let new = queue
            .receive(1, VIS, None, later)
            .messages
            .remove(0)
            .receipt_handle;
        assert_ne!(old, new);

        let refused = queue.delete(&old).expect_err("stale handle");
        assert_eq!(refused.code, "ReceiptHandleIsInvalid");
        assert!(!refused.clone().into_failure(0).retryable);
        let refused = queue
            .change_visibility(&old, Duration::ZERO, later)
            .expect_err("stale handle");
        assert_eq!(refused.code, "ReceiptHandleIsInvalid");
        assert_eq!(queue.snapshot(later).len(), 1);

        queue.delete(&new).expect("current handle deletes");
        assert!(queue.snapshot(later).is_empty());
        queue
            .delete(&new)
            .expect("deleting twice succeeds, as in SQS");
    }

    #[test]
    fn handles_from_another_queue_or_made_up_are_invalid() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        let mut other = QueueState::new(STANDARD);
        queue.send(&message("a"), now).expect("sent");
        other.send(&message("a"), now).expect("sent");
        let foreign = other
            .receive(1, VIS, None, now)
            .messages
            .remove(0)
            .receipt_handle;
        for handle in [foreign.as_str(), "garbage", "x:1:2:3", ""] {
            assert_eq!(
                queue.delete(handle).expect_err(handle).code,
                "ReceiptHandleIsInvalid"
            );
        }
        assert_eq!(queue.snapshot(now).len(), 1);
    }

    #[test]
    fn change_visibility_releases_or_extends_an_in_flight_message() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        queue.send(&message("a"), now).expect("sent");
        let handle = queue
            .receive(1, VIS, None, now)
            .messages
            .remove(0)
            .receipt_handle;
        queue
            .change_visibility(&handle, Duration::from_secs(100), now)
            .expect("extends");
        assert!(queue.receive(1, VIS, None, now + VIS).messages.is_empty());
        queue
            .change_visibility(&handle, Duration::ZERO, now + VIS)
            .expect("releases");
        assert!(queue.snapshot(now + VIS)[0].visible);
        assert_eq!(
            queue
                .change_visibility(&handle, VIS, now + VIS)
                .expect_err("not in flight")
                .code,
            "MessageNotInflight"
        );
        assert_eq!(
            queue
                .change_visibility(&handle, MAX_VISIBILITY + Duration::from_secs(1), now)
                .expect_err("too long")
                .code,
            "InvalidParameterValue"
        );
    }

    #[test]
    fn redrive_removes_a_message_received_max_times_instead_of_returning_it() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        let mut attrs = MessageAttributes::new();
        attrs.insert("k".to_owned(), "v".to_owned());
        queue
            .send(
                &OutgoingMessage {
                    body: "poison".to_owned(),
                    attributes: attrs.clone(),
                    ..OutgoingMessage::default()
                },
                now,
            )
            .expect("sent");
        queue.send(&message("fine"), now).expect("sent");
        let mut at = now;
        for expected in 1..=2 {
            let got = queue.receive(1, VIS, Some(2), at);
            assert_eq!(bodies(&got), ["poison"]);
            assert_eq!(got.messages[0].receive_count, expected);
            at += VIS;
        }
        let third = queue.receive(1, VIS, Some(2), at);
        assert_eq!(
            bodies(&third),
            ["fine"],
            "the poison is not returned a third time"
        );
        assert_eq!(third.dead_letters.len(), 1);
        let moved = &third.dead_letters[0];
        assert_eq!(moved.body, "poison");
        assert_eq!(moved.attributes, attrs);
        assert_eq!(queue.snapshot(at).len(), 1);

        let mut dead = QueueState::new("https://sqs.local/000000000000/dead");
        dead.accept_moved(third.dead_letters.into_iter().next().expect("moved"), at);
        let kept = dead.snapshot(at);
        assert_eq!(kept[0].body, "poison");
        assert_eq!(kept[0].attributes, attrs);
        assert!(kept[0].visible);
    }

    #[test]
    fn a_fifo_group_with_a_message_in_flight_delivers_nothing_more() {
        let now = Instant::now();
        let mut queue = QueueState::new(FIFO);
        queue.send(&grouped("a1", "a", None), now).expect("sent");
        queue.send(&grouped("a2", "a", None), now).expect("sent");
        queue.send(&grouped("b1", "b", None), now).expect("sent");

        let first = queue.receive(1, VIS, None, now);
        assert_eq!(bodies(&first), ["a1"]);
        let second = queue.receive(10, VIS, None, now);
        assert_eq!(
            bodies(&second),
            ["b1"],
            "group a is blocked while a1 is in flight"
        );

        queue
            .delete(&first.messages[0].receipt_handle)
            .expect("deleted");
        assert_eq!(bodies(&queue.receive(10, VIS, None, now)), ["a2"]);
    }

    #[test]
    fn a_fifo_group_unblocks_when_its_message_is_visible_again_and_keeps_order() {
        let now = Instant::now();
        let mut queue = QueueState::new(FIFO);
        queue.send(&grouped("a1", "a", None), now).expect("sent");
        queue.send(&grouped("a2", "a", None), now).expect("sent");
        queue.receive(1, VIS, None, now);
        let later = now + VIS;
        assert_eq!(
            bodies(&queue.receive(10, VIS, None, later)),
            ["a1", "a2"],
            "a1 again first, then a2 in the same receive"
        );
    }

    #[test]
    fn fifo_sends_need_a_group_and_dedup_within_five_minutes() {
        let now = Instant::now();
        let mut queue = QueueState::new(FIFO);
        assert_eq!(
            queue.send(&message("x"), now).expect_err("no group").code,
            "MissingParameter"
        );
        let id = queue
            .send(&grouped("x", "g", Some("d1")), now)
            .expect("sent");
        let repeat = queue
            .send(
                &grouped("x again", "g", Some("d1")),
                now + Duration::from_secs(299),
            )
            .expect("a duplicate is accepted");
        assert_eq!(repeat, id, "the original's id, as SQS returns it");
        assert_eq!(queue.snapshot(now).len(), 1);
        queue
            .send(&grouped("x later", "g", Some("d1")), now + DEDUP_WINDOW)
            .expect("sent");
        assert_eq!(queue.snapshot(now).len(), 2, "the window is over");
    }

    #[test]
    fn a_standard_queue_refuses_a_deduplication_id() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        let refused = queue
            .send(&grouped("x", "g", Some("d")), now)
            .expect_err("standard queue");
        assert_eq!(refused.code, "InvalidParameterValue");
    }

    #[test]
    fn an_oversized_or_empty_message_is_refused() {
        let now = Instant::now();
        let mut queue = QueueState::new(STANDARD);
        let big = message(&"x".repeat(SQS_MESSAGE_BYTES + 1));
        let refused = queue.send(&big, now).expect_err("too big");
        assert_eq!(refused.code, "InvalidParameterValue");
        assert!(refused.message.contains("262145"), "{}", refused.message);
        queue
            .send(&message(&"x".repeat(SQS_MESSAGE_BYTES)), now)
            .expect("exactly the limit is fine");
        assert_eq!(
            queue.send(&message(""), now).expect_err("empty").code,
            "InvalidParameterValue"
        );
    }
}
