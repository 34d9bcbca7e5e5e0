//! Checks a parsed submission and decides each item's event type. The original service
//! validated nothing beyond the presence of keys ("needs enhancement" in its README); here
//! ids must be UUIDs, times ISO 8601, addresses IPv4/IPv6 and ports 0–65535, and the first
//! offending field is named by its path so a sender can fix it.

use std::net::IpAddr;

use serde::Serialize;

use super::submission::{EventItem, Submission};

/// A submission whose every field checked out, borrowing from the parsed one.
#[derive(Debug, PartialEq, Eq)]
pub struct ValidSubmission<'s> {
    pub submission_id: &'s str,
    pub device_id: &'s str,
    /// `events.new_process` items first, then `events.network_connection`, each in list order.
    pub events: Vec<TelemetryEvent<'s>>,
}

/// One event, typed by the fields its item has. Serialises as the record's `details`, with
/// the original field names in the original order.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TelemetryEvent<'s> {
    NewProcess {
        cmdl: &'s str,
        user: &'s str,
    },
    NetworkConnection {
        source_ip: &'s str,
        destination_ip: &'s str,
        destination_port: u16,
    },
}

impl TelemetryEvent<'_> {
    /// The record's `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            TelemetryEvent::NewProcess { .. } => "new_process",
            TelemetryEvent::NetworkConnection { .. } => "network_connection",
        }
    }
}

/// The first field that failed validation, by path (`events.network_connection[2].destination_port`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a field's value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0:?} is not a UUID (expected 8-4-4-4-12 hexadecimal digits)")]
    NotUuid(String),
    #[error("{0:?} is not an ISO 8601 date-time (expected e.g. \"2022-05-09T03:23:58.982796\")")]
    NotDateTime(String),
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    NotIpAddress(String),
    #[error("{0} is not a port number (expected an integer from 0 to 65535)")]
    NotPort(String),
    #[error(
        "is required: the item has `source_ip` and `destination_port`, so it is a network_connection"
    )]
    MissingForNetworkConnection,
    #[error(
        "undefined source event type: an item needs `cmdl` and `user` (new_process) or \
         `source_ip`, `destination_ip` and `destination_port` (network_connection)"
    )]
    UndefinedEventType,
}

/// Validates `submission`; the first problem found is returned.
pub fn validate<'s>(submission: &'s Submission<'_>) -> Result<ValidSubmission<'s>, InvalidField> {
    uuid("submission_id", &submission.submission_id)?;
    uuid("device_id", &submission.device_id)?;
    date_time("time_created", &submission.time_created)?;
    let lists = [
        ("new_process", &submission.events.new_process),
        ("network_connection", &submission.events.network_connection),
    ];
    let mut events = Vec::with_capacity(lists.iter().map(|(_, items)| items.len()).sum());
    for (list, items) in lists {
        for (index, item) in items.iter().enumerate() {
            events.push(classify(item).map_err(|(field, problem)| InvalidField {
                field: match field {
                    Some(field) => format!("events.{list}[{index}].{field}"),
                    None => format!("events.{list}[{index}]"),
                },
                problem,
            })?);
        }
    }
    Ok(ValidSubmission {
        submission_id: &submission.submission_id,
        device_id: &submission.device_id,
        events,
    })
}

/// The original's rule, in its order: `cmdl` and `user` make a new_process; otherwise
/// `source_ip` and `destination_port` make a network_connection (which then needs
/// `destination_ip`); anything else is an undefined type. An item's list does not matter.
fn classify<'s>(
    item: &'s EventItem<'_>,
) -> Result<TelemetryEvent<'s>, (Option<&'static str>, Problem)> {
    if let (Some(cmdl), Some(user)) = (&item.cmdl, &item.user) {
        return Ok(TelemetryEvent::NewProcess { cmdl, user });
    }
    let (Some(source_ip), Some(port)) = (&item.source_ip, &item.destination_port) else {
        return Err((None, Problem::UndefinedEventType));
    };
    let Some(destination_ip) = &item.destination_ip else {
        return Err((Some("destination_ip"), Problem::MissingForNetworkConnection));
    };
    ip_address(source_ip).map_err(|problem| (Some("source_ip"), problem))?;
    ip_address(destination_ip).map_err(|problem| (Some("destination_ip"), problem))?;
    let destination_port = port
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| (Some("destination_port"), Problem::NotPort(port.to_string())))?;
    Ok(TelemetryEvent::NetworkConnection {
        source_ip,
        destination_ip,
        destination_port,
    })
}

/// The hyphenated form only (what sensors send and what is copied into records); any version.
fn uuid(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.len() == 36 && uuid::Uuid::try_parse(value).is_ok() {
        Ok(())
    } else {
        Err(InvalidField {
            field: field.to_owned(),
            problem: Problem::NotUuid(value.to_owned()),
        })
    }
}

/// A civil date-time (the sensors' local time, as in the fixture) or an instant with an
/// offset or `Z`.
fn date_time(field: &str, value: &str) -> Result<(), InvalidField> {
    let civil = value.parse::<jiff::civil::DateTime>().is_ok();
    if civil || value.parse::<jiff::Timestamp>().is_ok() {
        Ok(())
    } else {
        Err(InvalidField {
            field: field.to_owned(),
            problem: Problem::NotDateTime(value.to_owned()),
        })
    }
}

fn ip_address(value: &str) -> Result<(), Problem> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| Problem::NotIpAddress(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::submission::submission_texts;
    use super::*;

    const DECODED: &str = include_str!("../../../tests/fixtures/telemetry/event-body-decoded.json");

    /// Validates the fixture after replacing `from` with `to` (which must occur).
    fn validate_edited(from: &str, to: &str) -> Result<usize, InvalidField> {
        assert!(DECODED.contains(from), "fixture has no {from:?}");
        let json = DECODED.replacen(from, to, 1);
        let texts = submission_texts(&json).unwrap();
        let submission = texts[0].parse().unwrap();
        validate(&submission).map(|valid| valid.events.len())
    }

    fn invalid(from: &str, to: &str) -> InvalidField {
        validate_edited(from, to).expect_err("the edited submission must be invalid")
    }

    #[test]
    fn fixture_is_valid_with_seven_events_in_list_order() {
        let texts = submission_texts(DECODED).unwrap();
        let submission = texts[0].parse().unwrap();
        let valid = validate(&submission).unwrap();
        assert_eq!(valid.submission_id, "81140a44-b06d-421d-bd00-cbc65aab6503");
        assert_eq!(valid.device_id, "a6829ee2-871f-485e-9253-fbd02ba091cc");
        let types: Vec<&str> = valid.events.iter().map(TelemetryEvent::type_name).collect();
        assert_eq!(
            types,
            [
                "new_process",
                "new_process",
                "new_process",
                "new_process",
                "network_connection",
                "network_connection",
                "network_connection"
            ]
        );
        assert_eq!(
            valid.events[6],
            TelemetryEvent::NetworkConnection {
                source_ip: "192.168.0.1",
                destination_ip: "23.13.252.39",
                destination_port: 22914
            }
        );
    }

    #[test]
    fn submission_id_must_be_a_uuid() {
        let error = invalid("81140a44-b06d-421d-bd00-cbc65aab6503", "81140a44");
        assert_eq!(error.field, "submission_id");
        assert_eq!(error.problem, Problem::NotUuid("81140a44".to_owned()));
    }

    #[test]
    fn device_id_must_be_a_hyphenated_uuid() {
        let error = invalid(
            "a6829ee2-871f-485e-9253-fbd02ba091cc",
            "a6829ee2871f485e9253fbd02ba091cc",
        );
        assert_eq!(error.field, "device_id");
        assert!(matches!(error.problem, Problem::NotUuid(_)));
        let error = invalid("a6829ee2-871f-485e-9253-fbd02ba091cc", "not-a-uuid");
        assert_eq!(
            error.to_string(),
            "`device_id`: \"not-a-uuid\" is not a UUID (expected 8-4-4-4-12 hexadecimal digits)"
        );
    }

    #[test]
    fn time_created_must_be_an_iso_8601_date_time() {
        let error = invalid("2022-05-09T03:23:58.982796", "09/05/2022 03:23");
        assert_eq!(error.field, "time_created");
        assert!(matches!(error.problem, Problem::NotDateTime(_)));
        let error = invalid("2022-05-09T03:23:58.982796", "2022-13-09T03:23:58");
        assert_eq!(error.field, "time_created");
    }

    #[test]
    fn time_created_may_carry_an_offset_or_z() {
        for time in [
            "2022-05-09T03:23:58Z",
            "2022-05-09T03:23:58.5+02:00",
            "2022-05-09T03:23:58",
        ] {
            assert_eq!(
                validate_edited("2022-05-09T03:23:58.982796", time),
                Ok(7),
                "{time}"
            );
        }
    }

    #[test]
    fn source_ip_must_be_an_ip_address() {
        let error = invalid("\"192.168.0.2\"", "\"192.168.0.256\"");
        assert_eq!(error.field, "events.network_connection[1].source_ip");
        assert_eq!(
            error.problem,
            Problem::NotIpAddress("192.168.0.256".to_owned())
        );
    }

    #[test]
    fn destination_ip_must_be_an_ip_address() {
        let error = invalid("\"142.250.74.110\"", "\"example.com\"");
        assert_eq!(error.field, "events.network_connection[0].destination_ip");
        assert_eq!(
            error.to_string(),
            "`events.network_connection[0].destination_ip`: \"example.com\" is not an IPv4 or IPv6 address"
        );
    }

    #[test]
    fn ipv6_addresses_are_accepted() {
        let edited = validate_edited("\"142.250.74.110\"", "\"2001:4860:4860::8888\"");
        assert_eq!(edited, Ok(7));
        assert_eq!(validate_edited("\"192.168.0.2\"", "\"::1\""), Ok(7));
    }

    #[test]
    fn destination_port_must_be_within_0_to_65535() {
        let error = invalid("33760", "70000");
        assert_eq!(error.field, "events.network_connection[0].destination_port");
        assert_eq!(error.problem, Problem::NotPort("70000".to_owned()));
        assert!(matches!(
            invalid("41641", "-1").problem,
            Problem::NotPort(_)
        ));
        assert!(matches!(
            invalid("22914", "443.5").problem,
            Problem::NotPort(_)
        ));
        assert_eq!(validate_edited("33760", "0"), Ok(7));
        assert_eq!(validate_edited("33760", "65535"), Ok(7));
    }

    #[test]
    fn network_item_without_destination_ip_is_named() {
        let error = invalid("\"destination_ip\": \"23.13.252.39\",", "");
        assert_eq!(error.field, "events.network_connection[1].destination_ip");
        assert_eq!(error.problem, Problem::MissingForNetworkConnection);
    }

    #[test]
    fn item_of_no_known_type_is_an_undefined_event_type() {
        let error = invalid("\"user\": \"admin\"", "\"uid\": 0");
        assert_eq!(error.field, "events.new_process[0]");
        assert_eq!(error.problem, Problem::UndefinedEventType);
        assert!(error.to_string().contains("undefined source event type"));
    }

    #[test]
    fn type_is_decided_by_the_item_fields_not_the_list() {
        // A process item in the network list is still a new_process.
        let json = DECODED.replacen(
            "\"network_connection\": [",
            "\"network_connection\": [{\"cmdl\": \"ssh\", \"user\": \"root\"}, ",
            1,
        );
        let texts = submission_texts(&json).unwrap();
        let submission = texts[0].parse().unwrap();
        let valid = validate(&submission).unwrap();
        assert_eq!(
            valid.events[4],
            TelemetryEvent::NewProcess {
                cmdl: "ssh",
                user: "root"
            }
        );
        assert_eq!(valid.events.len(), 8);
    }

    #[test]
    fn cmdl_and_user_win_over_network_fields() {
        let edited = DECODED.replacen(
            "{\n        \"cmdl\": \"notepad.exe\",",
            "{\"source_ip\": \"x\", \"destination_port\": 1, \"cmdl\": \"notepad.exe\",",
            1,
        );
        let texts = submission_texts(&edited).unwrap();
        let submission = texts[0].parse().unwrap();
        let valid = validate(&submission).unwrap();
        assert_eq!(valid.events[0].type_name(), "new_process");
    }

    #[test]
    fn first_offending_field_is_reported() {
        // Both the device id and a port are wrong; the device id comes first.
        let json = DECODED
            .replacen("a6829ee2-871f-485e-9253-fbd02ba091cc", "nope", 1)
            .replacen("33760", "70000", 1);
        let texts = submission_texts(&json).unwrap();
        let submission = texts[0].parse().unwrap();
        assert_eq!(validate(&submission).unwrap_err().field, "device_id");
    }
}
