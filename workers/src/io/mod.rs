//! Ports (traits) for queues, topics, streams, object stores and tables, and their adapters:
//! `aws` (the AWS SDK, for AWS and AWS-compatible endpoints) and `memory` (in process).

pub mod aws;
pub mod counting;
pub mod memory;
mod ports;

pub use ports::*;
