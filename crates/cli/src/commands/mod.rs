//! One module per subcommand.

pub mod convert;
pub mod extract;
pub mod inspect;
