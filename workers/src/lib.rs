//! Everything that touches a message: the actix runtime that polls, processes, delivers and
//! acknowledges; the ports and adapters for AWS and the embedded backend; envelope unwrapping;
//! and the processors.

pub mod envelope;
pub mod io;
pub mod observability;
pub mod pod_deletion_cost;
pub mod processing;
pub mod processors;
mod python_json;
pub mod runtime;
