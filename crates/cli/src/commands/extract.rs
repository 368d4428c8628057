//! `domboot extract`: write one layer of a kernel image (by default the innermost kernel
//! ELF) or a part of a UKI to a file, atomically.

use super::inspect::LimitArgs;
use anyhow::{Context, bail};
use domboot_formats::{Chain, Format, Layer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

/// Write an inner layer of a kernel image to a file.
///
/// Layers are numbered as `domboot inspect` shows them (0 is the file itself). Without
/// --layer, the innermost kernel ELF is written: the vmlinux inside a bzImage or UKI.
#[derive(clap::Args)]
pub struct Args {
    /// Kernel image to take apart.
    pub file: PathBuf,
    /// Where to write the layer (replaced atomically).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Which layer: its index, or a format name (uki, pe, bzimage, gzip, bzip2, lzma, xz,
    /// lzo, lz4, zstd, elf32, elf64, or "elf" for either) meaning the first layer of it.
    #[arg(long, value_name = "N|FORMAT")]
    pub layer: Option<LayerSelector>,
    /// Write the embedded initrd or command line of a UKI instead of a layer.
    #[arg(long, value_name = "PART", conflicts_with = "layer")]
    pub uki_part: Option<UkiPart>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Clone, Debug)]
pub enum LayerSelector {
    Index(usize),
    Format(Format),
    AnyElf,
}

impl FromStr for LayerSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse() {
            return Ok(LayerSelector::Index(n));
        }
        if s.eq_ignore_ascii_case("elf") {
            return Ok(LayerSelector::AnyElf);
        }
        Format::from_name(s)
            .map(LayerSelector::Format)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "{s:?} is neither a layer index nor a format ({}, elf)",
                    names.join(", ")
                )
            })
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum UkiPart {
    Initrd,
    Cmdline,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let chain = domboot_formats::open(&args.file, &args.limits.options())?;
    let (what, bytes): (String, &[u8]) = match args.uki_part {
        Some(part) => uki_part(&chain, part)?,
        None => {
            let (index, layer) = select(&chain, args.layer.as_ref())
                .with_context(|| format!("{}", args.file.display()))?;
            (format!("layer {index} ({})", layer.format), &layer.data)
        }
    };
    crate::atomic::write_file(&args.output, bytes)?;
    eprintln!(
        "domboot: wrote {what}, {} bytes, to {}",
        bytes.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn select<'a>(
    chain: &'a Chain,
    selector: Option<&LayerSelector>,
) -> anyhow::Result<(usize, &'a Layer)> {
    let layers = chain.layers.iter().enumerate();
    let found = match selector {
        None | Some(LayerSelector::AnyElf) => layers.rev().find(|(_, l)| l.format.is_elf()),
        Some(LayerSelector::Index(n)) => layers.clone().nth(*n),
        Some(LayerSelector::Format(f)) => layers.clone().find(|(_, l)| l.format == *f),
    };
    match found {
        Some(hit) => Ok(hit),
        None => {
            let path: Vec<String> = chain
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| format!("{i}:{}", l.format))
                .collect();
            let wanted = match selector {
                None | Some(LayerSelector::AnyElf) => "no ELF kernel layer".to_string(),
                Some(LayerSelector::Index(n)) => format!("no layer {n}"),
                Some(LayerSelector::Format(f)) => format!("no {f} layer"),
            };
            bail!("{wanted}; the image has {}", path.join(" → "))
        }
    }
}

fn uki_part(chain: &Chain, part: UkiPart) -> anyhow::Result<(String, &[u8])> {
    let Some(uki) = chain.uki() else {
        bail!("--uki-part needs a UKI, and this image has no UKI layer");
    };
    match part {
        UkiPart::Initrd => match &uki.initrd {
            Some(b) => Ok(("the UKI's .initrd".into(), b)),
            None => bail!("this UKI has no .initrd section"),
        },
        // The section as stored, trailing newline included, like the initrd.
        UkiPart::Cmdline => match &uki.cmdline_section {
            Some(c) => Ok(("the UKI's .cmdline".into(), c)),
            None => bail!("this UKI has no .cmdline section"),
        },
    }
}
