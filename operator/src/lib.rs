//! The Wharf operator: turns Pipelines into worker Deployments, scales them on queue depth and
//! reports what it sees in `.status`. The scaling decision is a pure function ([`autoscaler`]);
//! Kubernetes and the queue are reached only at the edges.

pub mod autoscaler;
pub mod backends;
pub mod conditions;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod resources;
pub mod scale_reports;
pub mod scaler_loop;

pub use operator::{Election, OperatorConfig, OperatorError, connect, run, run_controllers};
/// The shutdown signal [`run`] and [`run_controllers`] observe.
pub use tokio_util::sync::CancellationToken;
