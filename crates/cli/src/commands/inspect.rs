//! `domboot inspect`: print a kernel image's chain of layers.
use std::path::PathBuf;
use std::process::ExitCode;

/// Show every layer of a kernel image (bzImage, UKI, compressed payload, ELF).
#[derive(clap::Args)]
pub struct Args {
    /// Kernel image to inspect.
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let chain = domboot_formats::open(&args.file, &Default::default())?;
    println!("{} layers", chain.layers.len());
    Ok(ExitCode::SUCCESS)
}
