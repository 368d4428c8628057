//! `domboot extract`: write an inner layer of a kernel image.
use std::path::PathBuf;
use std::process::ExitCode;

/// Write an inner layer (by default the innermost kernel ELF) to a file, atomically.
#[derive(clap::Args)]
pub struct Args {
    pub file: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("extract: not implemented yet")
}
