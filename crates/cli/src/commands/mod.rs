//! One module per subcommand.

pub mod boot_args;
pub mod boot_entries;
pub mod build;
pub mod convert;
pub mod domain_config;
pub mod extract;
pub mod initrd;
pub mod inspect;
pub mod kboot;
pub mod kexec;
pub mod plan;
pub mod verified;
