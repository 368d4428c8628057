//! `domboot convert`: read a domain configuration in one syntax, write it in another.
use anyhow::{Context, bail};
use domboot_config::{ConfigError, Syntax};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Convert a domain configuration between domboot TOML, libvirt XML, xl/xm and xend SEXPR.
///
/// The input's syntax is detected unless --from names it. What the input says that domboot
/// does not model (an xl `pci` line, a libvirt <video>), and what the target syntax cannot
/// say, is reported on standard error; --strict turns those reports into a failure.
#[derive(clap::Args)]
#[command(after_help = "\
Syntaxes:
  toml   domboot's native format (the default for new files)
  xml    libvirt domain XML (<domain>, with <os> unified for PV and HVM)
  xl     xl.cfg(5); reads legacy xm files too (builder=, loader=, device_model=)
  sexpr  xend S-expressions ((vm (name ...)(image (hvm ...)))), written indented

What a target syntax has no key for is kept in domboot extensions (xl: domboot_* keys,
which xl ignores; sexpr: a (domboot ...) list), so converting back loses nothing.

Examples:
  domboot convert --to toml guest.xml
  domboot convert --from xl --to xml /etc/xen/hvmdemo -o hvmdemo.xml
  domboot convert --to sexpr --compact guest.cfg")]
pub struct Args {
    /// Configuration file to read (`-` for standard input).
    pub file: PathBuf,
    /// Syntax of the input.
    #[arg(long, value_enum, default_value_t = FromSyntax::Auto, value_name = "SYNTAX")]
    pub from: FromSyntax,
    /// Syntax to write.
    #[arg(long, value_enum, value_name = "SYNTAX")]
    pub to: ToSyntax,
    /// Write here (replaced atomically) instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Fail if anything would be dropped: input the model does not keep, or model
    /// content the target syntax cannot say.
    #[arg(long)]
    pub strict: bool,
    /// With --to sexpr: one line, as xend and libvirt print it.
    #[arg(long)]
    pub compact: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FromSyntax {
    /// Detect from the content (and the file name's extension).
    Auto,
    /// domboot's native TOML.
    Toml,
    /// libvirt domain XML.
    #[value(alias = "libvirt")]
    Xml,
    /// xl.cfg / xm configuration file.
    #[value(alias = "xm")]
    Xl,
    /// xend S-expression.
    #[value(alias = "sxp", alias = "xend")]
    Sexpr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ToSyntax {
    /// domboot's native TOML.
    Toml,
    /// libvirt domain XML.
    #[value(alias = "libvirt")]
    Xml,
    /// xl.cfg / xm configuration file.
    #[value(alias = "xm")]
    Xl,
    /// xend S-expression.
    #[value(alias = "sxp", alias = "xend")]
    Sexpr,
}

impl ToSyntax {
    fn syntax(self) -> Syntax {
        match self {
            ToSyntax::Toml => Syntax::Toml,
            ToSyntax::Xml => Syntax::Xml,
            ToSyntax::Xl => Syntax::Xl,
            ToSyntax::Sexpr => Syntax::Sexpr,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdin = args.file.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_string()
    } else {
        args.file.display().to_string()
    };
    let mut text = String::new();
    if stdin {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        text =
            std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {name}"))?;
    }

    let from = match args.from {
        FromSyntax::Auto => {
            domboot_config::detect(&text, &name).ok_or_else(|| ConfigError::UnknownSyntax {
                file: name.clone(),
                hint: "not XML, an S-expression, TOML or xl `key = value` lines".into(),
            })?
        }
        FromSyntax::Toml => Syntax::Toml,
        FromSyntax::Xml => Syntax::Xml,
        FromSyntax::Xl => Syntax::Xl,
        FromSyntax::Sexpr => Syntax::Sexpr,
    };
    let to = args.to.syntax();
    if args.compact && to != Syntax::Sexpr {
        bail!("--compact applies to --to sexpr only");
    }

    let (config, warnings) = domboot_config::parse_with_warnings(&text, from, &name)?;
    let mut dropped = 0;
    for w in &warnings {
        eprintln!("domboot: warning: {w}");
        dropped += 1;
    }
    for loss in domboot_config::losses(&config, to) {
        eprintln!("domboot: warning: {to} cannot say it: {loss}");
        dropped += 1;
    }
    if args.strict && dropped > 0 {
        bail!("{dropped} item(s) would be lost converting {name} from {from} to {to} (--strict)");
    }

    let out = if args.compact {
        let mut s = domboot_config::sexpr::write_compact(&config);
        s.push('\n');
        s
    } else {
        domboot_config::write(&config, to)
    };
    match &args.output {
        Some(path) => crate::atomic::write_file(path, out.as_bytes())?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to standard output")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
