//! A processor whose behaviour each message spells out, so runtime tests can drive every
//! outcome (outputs, permanent and transient failures, panics, slow work) through real queues.
//!
//! A body is one line of words:
//! - `ok ID N` — N outputs `ID#0` … `ID#N-1` to the sink, partitioned by `ID`;
//! - `permanent ID` — a permanent failure;
//! - `transient ID K` — a transient failure until the K-th receive, then one output `ID#0`;
//! - `panic ID` — the processor panics;
//! - `slow ID MS` — sleeps MS milliseconds, then one output `ID#0`.

use async_trait::async_trait;
use wharf_crds::ProcessorKind;
use wharf_workers::envelope::Payload;
use wharf_workers::processors::{MessageContext, Outcome, Output, OutputRecord, Processor};

#[derive(Debug)]
pub struct ScriptedProcessor {
    pub sink: String,
}

impl ScriptedProcessor {
    pub fn new(sink: &str) -> Self {
        Self {
            sink: sink.to_owned(),
        }
    }

    fn outputs(&self, id: &str, n: usize) -> Outcome {
        Outcome::Ok(
            (0..n)
                .map(|i| Output {
                    sink: self.sink.clone(),
                    record: OutputRecord {
                        body: format!("{id}#{i}"),
                        partition_key: Some(id.to_owned()),
                        ..OutputRecord::default()
                    },
                })
                .collect(),
        )
    }
}

#[async_trait]
impl Processor for ScriptedProcessor {
    fn kind(&self) -> ProcessorKind {
        ProcessorKind::Telemetry
    }

    async fn process(&self, payload: &Payload, context: &MessageContext) -> Outcome {
        let words: Vec<&str> = payload.body.split_whitespace().collect();
        let number = |i: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match words.as_slice() {
            ["ok", id, ..] => self.outputs(id, number(2) as usize),
            ["permanent", id] => Outcome::Permanent(format!("{id} is poison")),
            ["transient", id, ..] if u64::from(context.receive_count) < number(2) => {
                Outcome::Transient(format!("{id} not yet (receive {})", context.receive_count))
            }
            ["transient", id, ..] => self.outputs(id, 1),
            ["panic", id] => panic!("scripted panic on {id}"),
            ["slow", id, ..] => {
                tokio::time::sleep(std::time::Duration::from_millis(number(2))).await;
                self.outputs(id, 1)
            }
            _ => Outcome::Permanent(format!("unknown script {:?}", payload.body)),
        }
    }
}
