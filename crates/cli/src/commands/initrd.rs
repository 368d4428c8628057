//! `domboot initrd`: build an initramfs image (a newc cpio archive, optionally compressed)
//! from directory trees, gen_init_cpio file lists, TOML manifests and a static busybox.

use anyhow::{Context, bail};
use domboot_initramfs::{CompressOptions, Compression, Initramfs};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Build an initramfs image: a newc cpio archive, compressed with gzip, zstd or lz4.
///
/// Sources are applied in this order, a later entry replacing an earlier one at the same
/// path: --busybox, every --dir, every --list, every --manifest. Parent directories are
/// created as needed (mode 0755, root). The image is written atomically.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  domboot initrd -o initrd.cpio.gz --busybox --dir rootfs
  domboot initrd -o kboot.cpio.gz --kboot      (then boot it with root=DEV [kernel=NAME])
  domboot initrd -o initrd.zst --manifest image.toml --reproducible
  domboot initrd -o initrd.lz4 --list files.txt --dir overlay=/opt/overlay

File list lines (the kernel's gen_init_cpio format; relative paths from the current directory):
  file NAME LOCATION MODE UID GID [LINKS...]   dir NAME MODE UID GID
  nod NAME MODE UID GID c|b MAJ MIN            slink NAME TARGET MODE UID GID
  pipe NAME MODE UID GID                       sock NAME MODE UID GID
  DEST SRC   (a host file, symlink or directory tree with its own metadata)

Manifests are TOML ([[tree]], [[file]], [[dir]], [[symlink]], [[node]], busybox = true);
see crates/initramfs/README.md.")]
pub struct Args {
    /// Where to write the image (replaced atomically).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Copy a directory tree into the image: its contents go to the root, or under DEST
    /// with DIR=/DEST. Keeps modes, owners, mtimes, symlinks, device nodes; skips sockets.
    #[arg(long, value_name = "DIR[=/DEST]")]
    pub dir: Vec<String>,
    /// Add the entries of a file list in the kernel's gen_init_cpio format.
    #[arg(long, value_name = "FILE")]
    pub list: Vec<PathBuf>,
    /// Add the entries of a TOML manifest (paths in it are relative to its folder).
    #[arg(long, value_name = "FILE")]
    pub manifest: Vec<PathBuf>,
    /// Add a static busybox as /bin/busybox plus a symlink for each applet, and what makes
    /// the image bootable: an /init that mounts /proc, /sys and /dev and starts a shell
    /// (exit ends the VM), and /dev/console. Without PATH, the host's busybox (Debian:
    /// apt-get install busybox-static). --dir, --list and --manifest may replace /init.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub busybox: Option<Option<PathBuf>>,
    /// Build the mini kboot (seeds/004): busybox (the host's, or --busybox PATH) and this
    /// domboot with an /init that reads root=, boot=, kernel=, ramdisk= and entry= from the
    /// command line, mounts the root (and boot=) read-only, finds the kernels in /boot (and
    /// the disk's boot loader entries), shows a menu on the console when there are several
    /// and none was named, then runs `domboot kexec load` and `exec`. Modules in
    /// /lib/kboot/modules/*.ko (add them with --dir) are loaded first.
    #[arg(long)]
    pub kboot: bool,
    /// Compression [default: from OUT's suffix (.gz, .zst, .lz4, .cpio), else gzip].
    /// lz4 is written in the legacy frame, the only one the kernel unpacks.
    #[arg(long, value_name = "FORMAT", value_parser = parse_compression)]
    pub compress: Option<Compression>,
    /// Compression level (gzip 0-9, default 6; zstd 1-19, default 3).
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
    /// Compression threads (0: one per CPU). The output does not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Byte-identical output for identical inputs: entries sorted (always), every mtime
    /// SOURCE_DATE_EPOCH (or 0), host files owned by root.
    #[arg(long)]
    pub reproducible: bool,
    /// Write host files as owned by root (uid/gid 0) without --reproducible's mtimes.
    #[arg(long)]
    pub root_owned: bool,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
}

/// "DIR" or "DIR=/DEST" (only a DEST starting with '/' splits, so names with '=' work).
fn split_dir(arg: &str) -> (&Path, &str) {
    match arg.rsplit_once('=') {
        Some((dir, dest)) if dest.starts_with('/') && !dir.is_empty() => (Path::new(dir), dest),
        _ => (Path::new(arg), "/"),
    }
}

fn source_date_epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970")
        }),
        _ => Ok(0),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.dir.is_empty()
        && args.list.is_empty()
        && args.manifest.is_empty()
        && args.busybox.is_none()
        && !args.kboot
    {
        bail!("nothing to put into the image: give --dir, --list, --manifest or --busybox");
    }
    let compression = args.compress.unwrap_or_else(|| {
        args.output
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(Compression::from_file_name)
            .unwrap_or(Compression::Gzip)
    });

    let mut fs = Initramfs::new()
        .reproducible(args.reproducible)
        .root_owned(args.root_owned);
    if args.reproducible {
        fs = fs.source_date_epoch(source_date_epoch()?);
    }
    match &args.busybox {
        None if args.kboot => fs = fs.busybox_auto()?.bootable_shell(),
        None => {}
        Some(None) => fs = fs.busybox_auto()?.bootable_shell(),
        Some(Some(path)) => fs = fs.busybox(path)?.bootable_shell(),
    }
    if args.kboot {
        fs = super::kboot::add(fs)?;
    }
    for d in &args.dir {
        let (dir, dest) = split_dir(d);
        fs = fs.dir_tree(dir, dest)?;
    }
    for l in &args.list {
        fs = fs.list_file(l)?;
    }
    for m in &args.manifest {
        fs = fs.manifest(m)?;
    }
    for w in fs.warnings() {
        eprintln!("domboot: warning: {w}");
    }

    let options = CompressOptions {
        level: args.level,
        threads: args.threads,
    };
    let summary = write_atomically(&args.output, |out| {
        Ok(fs.write_with(out, compression, &options)?)
    })?;
    let ratio = if summary.cpio_bytes > 0 {
        100.0 * summary.output_bytes as f64 / summary.cpio_bytes as f64
    } else {
        0.0
    };
    eprintln!(
        "wrote {}: {} entries, {} bytes of cpio, {} bytes {} ({ratio:.1}%)",
        args.output.display(),
        summary.entries,
        summary.cpio_bytes,
        summary.output_bytes,
        if compression == Compression::None {
            "uncompressed".to_string()
        } else {
            format!("with {compression}")
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Streams into a temporary file beside `path`, then renames it into place; on error the
/// temporary file is removed and `path` is untouched. Shows bytes written on stderr when
/// it is a terminal.
fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".domboot-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} writing {msg}: {bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(path.display().to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let result = match &progress {
        Some(bar) => write(&mut bar.wrap_write(tmp.as_file_mut())),
        None => write(tmp.as_file_mut()),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let value = result.with_context(|| format!("cannot build {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    set_readable(tmp.as_file())?;
    tmp.persist(path)
        .with_context(|| format!("cannot rename the output into place at {}", path.display()))?;
    Ok(value)
}

fn set_readable(file: &std::fs::File) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .context("cannot set the output's permissions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_arguments() {
        assert_eq!(split_dir("rootfs"), (Path::new("rootfs"), "/"));
        assert_eq!(split_dir("a=b"), (Path::new("a=b"), "/"));
        assert_eq!(split_dir("a=b=/opt/x"), (Path::new("a=b"), "/opt/x"));
        assert_eq!(split_dir("=/x"), (Path::new("=/x"), "/"));
    }
}
