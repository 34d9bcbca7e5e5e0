//! Adapters from the ports to the AWS SDK.

pub mod config;

pub use config::{AwsOverrides, sdk_config};
