//! `domboot inspect`: the chain of layers of a kernel image, for people (a table per layer)
//! and for scripts (`--json`, documented in docs/inspect-json.md).

mod human;

use crate::units::parse_size;
use domboot_formats::{Chain, ChainOptions, Layer};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Show every layer of a kernel image: bzImage header, UKI sections, compressed payload,
/// ELF segments and notes, entry points.
#[derive(clap::Args)]
pub struct Args {
    /// Kernel image: bzImage, vmlinux ELF, UKI, or a compressed kernel (vmlinux.gz, ...).
    pub file: PathBuf,
    /// Print JSON (stable; see docs/inspect-json.md) instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limits shared by commands that unwrap images.
#[derive(clap::Args, Clone)]
pub struct LimitArgs {
    /// Most bytes any decompression may produce (default: twice the kernel's init_size for
    /// a bzImage payload, 1G for a standalone compressed file). Accepts K/M/G suffixes.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_decompressed: Option<u64>,
    /// Most layers to unwrap before giving up.
    #[arg(long, value_name = "N", default_value_t = domboot_formats::DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
}

impl LimitArgs {
    pub fn options(&self) -> ChainOptions {
        ChainOptions {
            max_depth: self.max_depth,
            max_decompressed: self.max_decompressed,
            ..Default::default()
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    file: &'a Path,
    size: u64,
    layers: Vec<LayerReport<'a>>,
}

#[derive(Serialize)]
struct LayerReport<'a> {
    index: usize,
    #[serde(flatten)]
    layer: &'a Layer,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let chain = domboot_formats::open(&args.file, &args.limits.options())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report(&args.file, &chain))?
        );
    } else {
        print!("{}", human::render(&args.file, &chain));
    }
    Ok(ExitCode::SUCCESS)
}

fn report<'a>(file: &'a Path, chain: &'a Chain) -> Report<'a> {
    Report {
        file,
        size: chain.layers.first().map_or(0, |l| l.size),
        layers: chain
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| LayerReport { index, layer })
            .collect(),
    }
}
