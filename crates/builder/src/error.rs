//! Why a domain could not be built. Every message names the input, the value and the limit.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] domboot_formats::ChainError),
    /// A region cannot be placed: names the region, its size, the allowed range and why.
    #[error("{0}")]
    Placement(String),
    #[error(
        "command line is {len} bytes but the kernel accepts at most {max} (cmdline_size {size} includes the terminating NUL)"
    )]
    CmdlineTooLong { len: usize, max: u32, size: u32 },
    #[error("memory size {size:#x} is {why}")]
    Memory { size: u64, why: String },
    /// The requested protocol or option does not suit this kernel.
    #[error("{0}")]
    Unsupported(String),
    #[error("--load-address {address:#x} {why}")]
    LoadAddress { address: u64, why: String },
}
