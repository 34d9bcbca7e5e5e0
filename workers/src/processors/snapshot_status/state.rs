//! The collection state machine, without I/O: reading an export-status item, the original's
//! "received" and "success" tests, the run-completion check, and what a message should do
//! next given what the table holds — including when it is a redelivery.

use super::input::SnapshotMessage;
use crate::io::{AttributeValue, Item};

/// Export-status table attributes (the original's names).
pub mod attr {
    pub const CORRELATION_ID: &str = "CorrelationId";
    pub const COLLECTION_NAME: &str = "CollectionName";
    pub const COLLECTION_STATUS: &str = "CollectionStatus";
    pub const FILES_EXPORTED: &str = "FilesExported";
    pub const FILES_RECEIVED: &str = "FilesReceived";
    pub const FILES_SENT: &str = "FilesSent";
    /// String set of the files (or message ids) already counted in `FilesReceived`, so a
    /// redelivered notification is never counted twice.
    pub const PROCESSED_FILES: &str = "ProcessedFiles";
    /// The marker of the message that moved the collection to `Received`, so that message
    /// alone re-sends the notification if it is redelivered.
    pub const RECEIVED_BY: &str = "ReceivedBy";
    /// The marker of the message that moved the collection to `Success`.
    pub const SUCCEEDED_BY: &str = "SucceededBy";
}

/// A collection's status, exactly as stored (case matters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CollectionStatus {
    Exporting,
    Exported,
    Sent,
    Received,
    Success,
    /// A value this processor does not know; it never matches a test.
    Other(String),
}

impl CollectionStatus {
    pub fn parse(value: &str) -> Self {
        match value {
            "Exporting" => Self::Exporting,
            "Exported" => Self::Exported,
            "Sent" => Self::Sent,
            "Received" => Self::Received,
            "Success" => Self::Success,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Exporting => "Exporting",
            Self::Exported => "Exported",
            Self::Sent => "Sent",
            Self::Received => "Received",
            Self::Success => "Success",
            Self::Other(other) => other,
        }
    }
}

/// The parts of an export-status item the state machine reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportStatus {
    pub status: CollectionStatus,
    pub files_exported: i64,
    pub files_received: i64,
    /// Logged only: the original compares received files with exported ones.
    pub files_sent: i64,
    pub received_by: Option<String>,
    pub succeeded_by: Option<String>,
}

impl ExportStatus {
    /// Reads an item; absent or unreadable counts are 0 and an absent status is `Other("")`,
    /// neither of which passes a test.
    pub fn from_item(item: &Item) -> Self {
        let number = |name: &str| item.get(name).and_then(AttributeValue::as_i64).unwrap_or(0);
        let text = |name: &str| {
            item.get(name)
                .and_then(AttributeValue::as_str)
                .map(str::to_owned)
        };
        Self {
            status: CollectionStatus::parse(&text(attr::COLLECTION_STATUS).unwrap_or_default()),
            files_exported: number(attr::FILES_EXPORTED),
            files_received: number(attr::FILES_RECEIVED),
            files_sent: number(attr::FILES_SENT),
            received_by: text(attr::RECEIVED_BY),
            succeeded_by: text(attr::SUCCEEDED_BY),
        }
    }
}

/// The original's "received" test: exported or sent, and at least as many files received as
/// exported (`FilesSent` is not compared, whatever the README says).
pub fn is_collection_received(status: &ExportStatus) -> bool {
    matches!(
        status.status,
        CollectionStatus::Exported | CollectionStatus::Sent
    ) && status.files_received >= status.files_exported
}

/// The original's "success" test: the collection was sent or received.
pub fn is_collection_success(status: &ExportStatus) -> bool {
    matches!(
        status.status,
        CollectionStatus::Sent | CollectionStatus::Received
    )
}

/// Whether every collection of a run has one of `allowed` statuses (false for no items, which
/// cannot happen once the current collection exists).
pub fn all_collections_in(items: &[Item], allowed: &[CollectionStatus]) -> bool {
    !items.is_empty()
        && items.iter().all(|item| {
            let status = item
                .get(attr::COLLECTION_STATUS)
                .and_then(AttributeValue::as_str)
                .map(CollectionStatus::parse);
            status.is_some_and(|s| allowed.contains(&s))
        })
}

/// Statuses that make a run "all received".
pub fn received_statuses() -> [CollectionStatus; 2] {
    [CollectionStatus::Received, CollectionStatus::Success]
}

/// Statuses that make a run "all successful".
pub fn success_statuses() -> [CollectionStatus; 1] {
    [CollectionStatus::Success]
}

/// What identifies a delivery for idempotency: the file it reports when it names one, else
/// the queue message id and where in the message the notification was.
pub fn delivery_marker(
    message: &SnapshotMessage,
    message_id: &str,
    payload_origin: &str,
) -> Option<String> {
    if message.names_a_file() {
        return Some(format!("file:{}", message.file_name));
    }
    if message_id.is_empty() {
        return None;
    }
    let mut marker = format!("message:{message_id}");
    for origin in [payload_origin, message.origin.as_str()] {
        if !origin.is_empty() && origin != "body" && origin != "payload" {
            marker.push('/');
            marker.push_str(origin);
        }
    }
    Some(marker)
}

/// Whether `FilesReceived` was incremented by this delivery or by an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// Counted now.
    New,
    /// Already counted by an earlier delivery of the same file or message.
    Duplicate,
}

/// What a data file does once it is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// The collection still waits for files (or is past `Received`): nothing more.
    Wait,
    /// The collection is now received: set `Received`, notify export state, check the run.
    MarkReceived,
    /// A redelivery of the message that already marked the collection received: notify and
    /// check the run again (the first attempt's outputs may not have been delivered), without
    /// counting anything twice.
    RepeatReceived,
}

/// The step after counting a data file, given the item as it is now.
pub fn after_file_counted(
    status: &ExportStatus,
    counting: Counting,
    marker: Option<&str>,
) -> FileStep {
    if is_collection_received(status) {
        // Also for a duplicate: the first delivery may have counted and then failed before
        // setting the status.
        return FileStep::MarkReceived;
    }
    if counting == Counting::Duplicate
        && status.status == CollectionStatus::Received
        && marker.is_some()
        && status.received_by.as_deref() == marker
    {
        return FileStep::RepeatReceived;
    }
    FileStep::Wait
}

/// What a success file does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuccessStep {
    /// The collection is not (yet) sent or received: nothing happens.
    Ignore,
    /// Set `Success` and check whether the whole run succeeded.
    MarkSuccess,
    /// A redelivery of the message that already set `Success`: check the run again.
    RepeatSuccess,
}

/// The step for a success file, given the current item.
pub fn on_success_file(status: &ExportStatus, marker: Option<&str>) -> SuccessStep {
    if is_collection_success(status) {
        return SuccessStep::MarkSuccess;
    }
    if status.status == CollectionStatus::Success
        && marker.is_some()
        && status.succeeded_by.as_deref() == marker
    {
        return SuccessStep::RepeatSuccess;
    }
    SuccessStep::Ignore
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn item(status: &str, exported: i64, sent: i64, received: i64) -> Item {
        Item::from([
            (
                attr::CORRELATION_ID.to_owned(),
                AttributeValue::S("c".into()),
            ),
            (
                attr::COLLECTION_NAME.to_owned(),
                AttributeValue::S("db.a".into()),
            ),
            (
                attr::COLLECTION_STATUS.to_owned(),
                AttributeValue::S(status.into()),
            ),
            (
                attr::FILES_EXPORTED.to_owned(),
                AttributeValue::N(exported.to_string()),
            ),
            (
                attr::FILES_SENT.to_owned(),
                AttributeValue::N(sent.to_string()),
            ),
            (
                attr::FILES_RECEIVED.to_owned(),
                AttributeValue::N(received.to_string()),
            ),
        ])
    }

    fn status(status: &str, exported: i64, sent: i64, received: i64) -> ExportStatus {
        ExportStatus::from_item(&item(status, exported, sent, received))
    }

    fn statuses(values: &[&str]) -> Vec<Item> {
        values
            .iter()
            .map(|s| {
                Item::from([(
                    attr::COLLECTION_STATUS.to_owned(),
                    AttributeValue::S((*s).to_owned()),
                )])
            })
            .collect()
    }

    fn message(file_name: &str, origin: &str) -> SnapshotMessage {
        SnapshotMessage {
            correlation_id: "c".into(),
            collection_name: "db.a".into(),
            snapshot_type: "full".into(),
            export_date: "2020-01-01".into(),
            shutdown_flag: Value::from("true"),
            reprocess_files: Value::from("true"),
            is_success_file: false,
            file_name: file_name.into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn numbers_are_read_from_dynamodb_strings() {
        let s = status("Sent", 12, 11, 10);
        assert_eq!(
            (s.files_exported, s.files_sent, s.files_received),
            (12, 11, 10)
        );
        assert_eq!(s.status, CollectionStatus::Sent);
    }

    #[test]
    fn received_when_sent_and_all_files_received() {
        assert!(is_collection_received(&status("Sent", 1, 1, 1)));
    }

    #[test]
    fn received_when_exported_and_all_files_received() {
        assert!(is_collection_received(&status("Exported", 1, 1, 1)));
    }

    #[test]
    fn not_received_when_more_files_exported_than_received() {
        assert!(!is_collection_received(&status("Sent", 2, 1, 1)));
    }

    #[test]
    fn received_when_more_sent_than_received_because_sent_is_ignored() {
        assert!(is_collection_received(&status("Sent", 1, 2, 1)));
    }

    #[test]
    fn received_when_more_received_than_exported() {
        assert!(is_collection_received(&status("Sent", 1, 1, 2)));
    }

    #[test]
    fn not_received_when_exported_and_sent_exceed_received() {
        assert!(!is_collection_received(&status("Sent", 2, 2, 1)));
    }

    #[test]
    fn not_received_while_exporting() {
        assert!(!is_collection_received(&status("Exporting", 1, 1, 1)));
    }

    #[test]
    fn statuses_are_case_sensitive() {
        assert!(!is_collection_received(&status("SENT", 1, 1, 1)));
        assert!(!is_collection_success(&status("RECEIVED", 1, 1, 1)));
    }

    #[test]
    fn success_when_received() {
        assert!(is_collection_success(&status("Received", 1, 1, 1)));
    }

    #[test]
    fn success_when_sent() {
        assert!(is_collection_success(&status("Sent", 1, 1, 1)));
    }

    #[test]
    fn not_success_when_exported() {
        assert!(!is_collection_success(&status("Exported", 1, 1, 1)));
    }

    #[test]
    fn completion_one_collection_one_status() {
        assert!(all_collections_in(
            &statuses(&["Success"]),
            &success_statuses()
        ));
        assert!(!all_collections_in(
            &statuses(&["Received"]),
            &success_statuses()
        ));
    }

    #[test]
    fn completion_one_collection_several_statuses() {
        assert!(all_collections_in(
            &statuses(&["Received"]),
            &received_statuses()
        ));
        assert!(!all_collections_in(
            &statuses(&["Sent"]),
            &received_statuses()
        ));
    }

    #[test]
    fn completion_several_collections_one_status() {
        assert!(all_collections_in(
            &statuses(&["Success", "Success"]),
            &success_statuses()
        ));
        assert!(!all_collections_in(
            &statuses(&["Success", "Received"]),
            &success_statuses()
        ));
    }

    #[test]
    fn completion_several_collections_several_statuses() {
        assert!(all_collections_in(
            &statuses(&["Received", "Success", "Received"]),
            &received_statuses()
        ));
        assert!(!all_collections_in(
            &statuses(&["Received", "Success", "Sent"]),
            &received_statuses()
        ));
    }

    #[test]
    fn completion_needs_a_status_on_every_item() {
        let mut items = statuses(&["Success"]);
        items.push(Item::new());
        assert!(!all_collections_in(&items, &success_statuses()));
        assert!(!all_collections_in(&[], &success_statuses()));
    }

    #[test]
    fn marker_is_the_file_when_named() {
        assert_eq!(
            delivery_marker(&message("f/db.a.1.gz.enc", "payload"), "m-1", "body"),
            Some("file:f/db.a.1.gz.enc".to_owned())
        );
    }

    #[test]
    fn marker_is_the_message_id_and_position_without_a_file() {
        assert_eq!(
            delivery_marker(&message("NOT_SET", "payload"), "m-1", "body"),
            Some("message:m-1".to_owned())
        );
        assert_eq!(
            delivery_marker(&message("NOT_SET", "Records[1].body"), "m-1", "body"),
            Some("message:m-1/Records[1].body".to_owned())
        );
        assert_eq!(
            delivery_marker(&message("NOT_SET", "payload"), "", "body"),
            None
        );
    }

    #[test]
    fn new_file_completing_the_collection_marks_it_received() {
        let s = status("Sent", 2, 2, 2);
        assert_eq!(
            after_file_counted(&s, Counting::New, Some("file:a")),
            FileStep::MarkReceived
        );
    }

    #[test]
    fn new_file_short_of_the_export_waits() {
        let s = status("Sent", 3, 3, 2);
        assert_eq!(
            after_file_counted(&s, Counting::New, Some("file:a")),
            FileStep::Wait
        );
    }

    #[test]
    fn duplicate_after_an_interrupted_first_attempt_still_marks_received() {
        let s = status("Sent", 2, 2, 2);
        assert_eq!(
            after_file_counted(&s, Counting::Duplicate, Some("file:a")),
            FileStep::MarkReceived
        );
    }

    #[test]
    fn duplicate_of_the_completing_file_repeats_the_notification() {
        let mut s = status("Received", 2, 2, 2);
        s.received_by = Some("file:b".into());
        assert_eq!(
            after_file_counted(&s, Counting::Duplicate, Some("file:b")),
            FileStep::RepeatReceived
        );
        assert_eq!(
            after_file_counted(&s, Counting::Duplicate, Some("file:a")),
            FileStep::Wait
        );
        assert_eq!(
            after_file_counted(&s, Counting::New, Some("file:b")),
            FileStep::Wait
        );
    }

    #[test]
    fn success_file_on_received_collection_marks_success() {
        assert_eq!(
            on_success_file(&status("Received", 1, 1, 1), Some("file:_s")),
            SuccessStep::MarkSuccess
        );
    }

    #[test]
    fn success_file_on_exported_collection_is_ignored() {
        assert_eq!(
            on_success_file(&status("Exported", 1, 1, 1), Some("file:_s")),
            SuccessStep::Ignore
        );
    }

    #[test]
    fn redelivered_success_file_repeats_only_for_its_own_marker() {
        let mut s = status("Success", 1, 1, 1);
        s.succeeded_by = Some("file:_s".into());
        assert_eq!(
            on_success_file(&s, Some("file:_s")),
            SuccessStep::RepeatSuccess
        );
        assert_eq!(on_success_file(&s, Some("file:other")), SuccessStep::Ignore);
        assert_eq!(on_success_file(&s, None), SuccessStep::Ignore);
    }
}
