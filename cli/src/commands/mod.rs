//! One module per subcommand.

pub mod crds;
pub mod invoke;
pub mod operator;
pub mod run;
pub mod unavailable;
pub mod validate;
pub mod worker;
