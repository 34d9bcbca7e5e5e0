//! One module per subcommand.

pub mod crds;
pub mod unavailable;
pub mod validate;
