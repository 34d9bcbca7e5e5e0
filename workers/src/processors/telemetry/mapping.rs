//! Turns a valid submission into one stream record per event, with the original service's
//! record body: `{"event_id", "device_id", "time_processed", "type", "details"}` in that order,
//! written as Python's `json.dumps` writes it, so existing consumers see the same bytes.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::Offset;
use serde::Serialize;
use uuid::Uuid;
use uuid::timestamp::context::ContextV1;
use wharf_crds::pipeline::PartitionKey;

use super::validate::{TelemetryEvent, ValidSubmission};
use crate::python_json;

/// A new event's identity: its id and the time it was processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// A UUID string; version 1 in production, as in the original.
    pub event_id: String,
    /// UTC, ISO 8601 without a zone, as Python's `datetime.utcnow().isoformat()`.
    pub time_processed: String,
}

/// Where event ids and processing times come from; tests substitute a fixed sequence.
pub trait Stamper: Send + Sync + fmt::Debug {
    fn stamp(&self) -> Stamp;
}

/// Version 1 UUIDs and the system clock. The node id is random per process (with the
/// multicast bit set, as RFC 9562 asks of a node id that is not a MAC address), so two
/// workers never share one.
#[derive(Debug)]
pub struct ClockStamper {
    node_id: [u8; 6],
    clock_sequence: ContextV1,
}

impl ClockStamper {
    pub fn new() -> Self {
        let random = Uuid::new_v4().into_bytes();
        let mut node_id = [0u8; 6];
        node_id.copy_from_slice(&random[10..16]);
        node_id[0] |= 0x01;
        Self {
            node_id,
            clock_sequence: ContextV1::new_random(),
        }
    }
}

impl Default for ClockStamper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stamper for ClockStamper {
    fn stamp(&self) -> Stamp {
        let now = jiff::Timestamp::now();
        // The clock is after 1970 on any machine that can reach a queue; 0 is a harmless floor.
        let seconds = u64::try_from(now.as_second()).unwrap_or(0);
        let nanos = u32::try_from(now.subsec_nanosecond()).unwrap_or(0);
        let timestamp = uuid::Timestamp::from_unix(&self.clock_sequence, seconds, nanos);
        Stamp {
            event_id: Uuid::new_v1(timestamp, &self.node_id).to_string(),
            time_processed: python_isoformat(Offset::UTC.to_datetime(now)),
        }
    }
}

/// `datetime.isoformat()`: microseconds, and no fraction at all when they are zero.
pub fn python_isoformat(time: DateTime) -> String {
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    );
    match time.subsec_nanosecond() / 1_000 {
        0 => date,
        micros => format!("{date}.{micros:06}"),
    }
}

/// One record for the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub partition_key: String,
    /// The original service's JSON.
    pub body: String,
}

/// The record body, fields in the original order.
#[derive(Serialize)]
struct RecordBody<'a> {
    event_id: &'a str,
    device_id: &'a str,
    time_processed: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    details: &'a TelemetryEvent<'a>,
}

/// One record per event, in the submission's order. `submission_id` and `time_created` are
/// not carried over (the original did not either); the partition key is chosen by `key`.
pub fn map_submission(
    submission: &ValidSubmission<'_>,
    key: PartitionKey,
    stamper: &dyn Stamper,
) -> Result<Vec<EventRecord>, serde_json::Error> {
    submission
        .events
        .iter()
        .map(|event| {
            let stamp = stamper.stamp();
            let body = python_json::to_string(&RecordBody {
                event_id: &stamp.event_id,
                device_id: submission.device_id,
                time_processed: &stamp.time_processed,
                event_type: event.type_name(),
                details: event,
            })?;
            let partition_key = match key {
                PartitionKey::Event => stamp.event_id,
                PartitionKey::Submission => submission.submission_id.to_owned(),
                PartitionKey::Device => submission.device_id.to_owned(),
            };
            Ok(EventRecord {
                partition_key,
                body,
            })
        })
        .collect()
}

#[cfg(test)]
pub mod testing {
    //! A deterministic [`Stamper`] for tests.

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{Stamp, Stamper};

    /// Event ids `00000000-0000-1000-8000-00000000000N` and times one second apart.
    #[derive(Debug, Default)]
    pub struct SequenceStamper {
        next: AtomicU32,
    }

    impl Stamper for SequenceStamper {
        fn stamp(&self) -> Stamp {
            let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            Stamp {
                event_id: format!("00000000-0000-1000-8000-{n:012}"),
                time_processed: format!("2022-05-09T03:24:{:02}.000001", n % 60),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::testing::SequenceStamper;
    use super::*;

    fn network() -> TelemetryEvent<'static> {
        TelemetryEvent::NetworkConnection {
            source_ip: "192.168.0.1",
            destination_ip: "142.250.74.110",
            destination_port: 33760,
        }
    }

    fn submission(events: Vec<TelemetryEvent<'static>>) -> ValidSubmission<'static> {
        ValidSubmission {
            submission_id: "81140a44-b06d-421d-bd00-cbc65aab6503",
            device_id: "a6829ee2-871f-485e-9253-fbd02ba091cc",
            events,
        }
    }

    #[test]
    fn new_process_body_matches_the_original_bytes() {
        let events = vec![TelemetryEvent::NewProcess {
            cmdl: "notepad.exe",
            user: "admin",
        }];
        let records = map_submission(
            &submission(events),
            PartitionKey::Event,
            &SequenceStamper::default(),
        )
        .unwrap();
        assert_eq!(
            records[0].body,
            r#"{"event_id": "00000000-0000-1000-8000-000000000001", "device_id": "a6829ee2-871f-485e-9253-fbd02ba091cc", "time_processed": "2022-05-09T03:24:01.000001", "type": "new_process", "details": {"cmdl": "notepad.exe", "user": "admin"}}"#
        );
    }

    #[test]
    fn network_connection_body_matches_the_original_bytes() {
        let records = map_submission(
            &submission(vec![network()]),
            PartitionKey::Event,
            &SequenceStamper::default(),
        )
        .unwrap();
        assert_eq!(
            records[0].body,
            r#"{"event_id": "00000000-0000-1000-8000-000000000001", "device_id": "a6829ee2-871f-485e-9253-fbd02ba091cc", "time_processed": "2022-05-09T03:24:01.000001", "type": "network_connection", "details": {"source_ip": "192.168.0.1", "destination_ip": "142.250.74.110", "destination_port": 33760}}"#
        );
    }

    #[test]
    fn non_ascii_command_lines_are_escaped_like_json_dumps() {
        let events = vec![TelemetryEvent::NewProcess {
            cmdl: "C:\\Programme\\Übung.exe",
            user: "jürgen",
        }];
        let records = map_submission(
            &submission(events),
            PartitionKey::Event,
            &SequenceStamper::default(),
        )
        .unwrap();
        assert!(
            records[0].body.ends_with(
                r#""details": {"cmdl": "C:\\Programme\\\u00dcbung.exe", "user": "j\u00fcrgen"}}"#
            ),
            "{}",
            records[0].body
        );
    }

    #[test]
    fn partition_key_follows_the_setting() {
        let valid = submission(vec![network(), network()]);
        let keys = |key| -> Vec<String> {
            map_submission(&valid, key, &SequenceStamper::default())
                .unwrap()
                .into_iter()
                .map(|record| record.partition_key)
                .collect()
        };
        assert_eq!(
            keys(PartitionKey::Event),
            [
                "00000000-0000-1000-8000-000000000001",
                "00000000-0000-1000-8000-000000000002"
            ]
        );
        assert_eq!(
            keys(PartitionKey::Submission),
            ["81140a44-b06d-421d-bd00-cbc65aab6503"; 2]
        );
        assert_eq!(
            keys(PartitionKey::Device),
            ["a6829ee2-871f-485e-9253-fbd02ba091cc"; 2]
        );
    }

    #[test]
    fn no_events_map_to_no_records() {
        let records = map_submission(
            &submission(Vec::new()),
            PartitionKey::Submission,
            &SequenceStamper::default(),
        )
        .unwrap();
        assert!(records.is_empty());
    }

    #[test]
    fn isoformat_has_microseconds_and_drops_a_zero_fraction_like_python() {
        let time = date(2022, 5, 9).at(3, 23, 58, 982_796_123);
        assert_eq!(python_isoformat(time), "2022-05-09T03:23:58.982796");
        assert_eq!(
            python_isoformat(date(2022, 5, 9).at(3, 23, 58, 5_000)),
            "2022-05-09T03:23:58.000005"
        );
        assert_eq!(
            python_isoformat(date(2022, 5, 9).at(3, 23, 58, 999)),
            "2022-05-09T03:23:58"
        );
    }

    #[test]
    fn clock_stamper_makes_unique_version_1_ids_and_utc_times() {
        let stamper = ClockStamper::new();
        let before = jiff::Timestamp::now();
        let stamps: Vec<Stamp> = (0..1000).map(|_| stamper.stamp()).collect();
        let ids: std::collections::HashSet<&str> =
            stamps.iter().map(|s| s.event_id.as_str()).collect();
        assert_eq!(ids.len(), stamps.len());
        let id = Uuid::parse_str(&stamps[0].event_id).unwrap();
        assert_eq!(id.get_version_num(), 1);
        assert_eq!(stamps[0].event_id, id.hyphenated().to_string());
        let processed: DateTime = stamps[0].time_processed.parse().unwrap();
        let processed = processed
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        let drift = processed.duration_since(before).as_secs_f64().abs();
        assert!(
            drift < 5.0,
            "time_processed is not UTC now: {}",
            stamps[0].time_processed
        );
    }
}
