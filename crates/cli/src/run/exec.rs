//! `run --exec CMD`: boot a throwaway VM whose /init runs CMD on the console and reports
//! its exit status between two markers that only this run knows. domboot passes CMD's
//! output through byte for byte, strips the markers and exits with CMD's status.

use super::modules;
use anyhow::{Context, bail};
use domboot_initramfs::{Compression, Initramfs};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The /init of every exec initramfs. The run's marker comes from the kernel command line
/// (`domboot.marker=`), so one cached initramfs serves every command.
const INIT: &str = r#"#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mkdir -p /tmp /root /dev/pts
/bin/busybox mount -t tmpfs tmpfs /tmp
M=$(/bin/busybox sed -n 's/.*domboot\.marker=\([0-9a-f]*\).*/\1/p' /proc/cmdline)
if [ -f /domboot/modules ]; then
    while read -r m; do
        /bin/busybox insmod "/domboot/modules.d/$m.ko" || echo "domboot: cannot load module $m" >&2
    done < /domboot/modules
fi
cd /root
if grep -q 'domboot\.io=serial' /proc/cmdline; then
    # ttyS1: control, ttyS2: stdin and stdout, ttyS3: stderr (see run/channels.rs).
    for t in 1 2 3; do /bin/busybox stty -F /dev/ttyS$t raw -echo; done
    /bin/busybox mkfifo /domboot/stdin
    # Opening a port clears its receive FIFO, so the host sends stdin only once the
    # decoder holds ttyS2 open and says so.
    (exec < /dev/ttyS2; echo stdin > /dev/ttyS1
     while read -r l && [ "$l" != . ]; do printf %s "$l" | base64 -d; done) > /domboot/stdin &
    r=$!
    echo start > /dev/ttyS1
    /bin/sh /domboot/cmd < /domboot/stdin > /dev/ttyS2 2> /dev/ttyS3
    s=$?
    # The decoder holds ttyS2 open: once it is gone the port's last close has waited for
    # the command's output to leave the UART.
    kill $r 2>/dev/null; wait $r 2>/dev/null
    echo "end $s" > /dev/ttyS1
else
    # One console (the KVM backend): no newline translation, so the command's bytes reach
    # the host unchanged between two markers.
    /bin/busybox stty -F /dev/console raw -echo 2>/dev/null
    printf 'DOMBOOT-START-%s\n' "$M" > /dev/console
    /bin/sh /domboot/cmd < /dev/console > /dev/console 2>&1
    s=$?
    printf 'DOMBOOT-END-%s %d\n' "$M" "$s" > /dev/console
fi
/bin/busybox reboot -f
"#;

/// Folders of the base initramfs besides busybox's: (path, mode).
const DIRS: &[(&str, u32)] = &[
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/root", 0o700),
];

/// Kernel to use when none is given: the running kernel's, then the one setup cached.
pub fn default_kernel() -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        let p = PathBuf::from(format!("/boot/vmlinuz-{}", release.trim()));
        if std::fs::File::open(&p).is_ok() {
            return Ok(p);
        }
        tried.push(p);
    }
    let cached = cache_dir().join("debian/cloud/vmlinuz");
    if cached.exists() {
        return Ok(cached);
    }
    tried.push(cached);
    bail!(
        "no kernel given and none found (tried {}); pass --kernel FILE, or run scripts/setup.sh to fetch Debian's cloud kernel into the cache",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOMBOOT_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/domboot"),
    }
}

/// The modules tree matching `kernel`: /lib/modules/RELEASE, or the cache's copy.
pub fn default_modules(kernel: &Path) -> Option<PathBuf> {
    let chain = domboot_formats::open(
        kernel,
        &domboot_formats::ChainOptions {
            stop_at: vec![domboot_formats::Format::BzImage],
            ..Default::default()
        },
    )
    .ok()?;
    let version = chain.bzimage()?.bzimage()?.kernel_version.clone()?;
    let release = version.split_whitespace().next()?.to_string();
    let system = PathBuf::from(format!("/lib/modules/{release}"));
    if system.is_dir() {
        return Some(system);
    }
    let debian = cache_dir().join("debian");
    for flavour in std::fs::read_dir(&debian).ok()?.flatten() {
        let rel =
            std::fs::read_to_string(flavour.path().join("kernel-release")).unwrap_or_default();
        if rel.trim() == release {
            return Some(flavour.path().join("modules"));
        }
    }
    None
}

/// The initrds of an exec run: the cached base (busybox + /init), the command, modules.
pub struct ExecInitrds {
    pub files: Vec<PathBuf>,
    /// Keeps the per-run files alive until the run ends.
    _dir: tempfile::TempDir,
}

pub fn prepare(
    cmd: &str,
    modules: &[(String, PathBuf)],
    kernel: &Path,
) -> anyhow::Result<ExecInitrds> {
    let base = base_initramfs(&busybox_for(kernel)?)?;
    let dir = tempfile::Builder::new().prefix("domboot-exec-").tempdir()?;
    let mut extra =
        Initramfs::new()
            .reproducible(true)
            .file("/domboot/cmd", 0o644, cmd.as_bytes().to_vec());
    if !modules.is_empty() {
        let list: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
        extra = extra.file("/domboot/modules", 0o644, list.into_bytes());
        for (name, path) in modules {
            let bytes = modules::read_module(path)?;
            extra = extra.file(&format!("/domboot/modules.d/{name}.ko"), 0o644, bytes);
        }
    }
    let per_run = dir.path().join("command.cpio");
    let bytes = extra.to_bytes(Compression::None)?;
    std::fs::write(&per_run, bytes)
        .with_context(|| format!("cannot write {}", per_run.display()))?;
    Ok(ExecInitrds {
        files: vec![base, per_run],
        _dir: dir,
    })
}

/// A static busybox that runs on `kernel`: the host's for a 64-bit kernel, the i386 one
/// scripts/setup.sh caches for a 32-bit kernel (which cannot run x86_64 programs).
pub fn busybox_for(kernel: &Path) -> anyhow::Result<PathBuf> {
    if !is_32bit(kernel) {
        return Ok(domboot_initramfs::busybox::find()?);
    }
    let i386 = cache_dir().join("debian/busybox-i386/bin/busybox");
    if !i386.is_file() {
        bail!(
            "{} is a 32-bit kernel, which needs an i386 busybox; none at {} (scripts/setup.sh \
             fetches Debian's busybox-static for i386 there)",
            kernel.display(),
            i386.display()
        );
    }
    domboot_initramfs::busybox::check_static(&i386)?;
    Ok(i386)
}

/// A bzImage without a 64-bit entry point (XLF_KERNEL_64), or a 32-bit ELF kernel.
fn is_32bit(kernel: &Path) -> bool {
    let options = domboot_formats::ChainOptions {
        stop_at: vec![domboot_formats::Format::BzImage],
        ..Default::default()
    };
    let Ok(chain) = domboot_formats::open(kernel, &options) else {
        return false;
    };
    if let Some(bz) = chain.bzimage().and_then(|l| l.bzimage()) {
        return bz.entry_points.entry64_offset.is_none();
    }
    chain
        .kernel_elf()
        .is_some_and(|elf| elf.data.get(4) == Some(&1))
}

/// busybox + /init, built once per busybox binary and /init version, cached.
fn base_initramfs(busybox: &Path) -> anyhow::Result<PathBuf> {
    let bb =
        std::fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bb.hash(&mut h);
    INIT.hash(&mut h);
    DIRS.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let path = cache_dir().join(format!("initramfs/exec-{:016x}.cpio.gz", h.finish()));
    if path.exists() {
        return Ok(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut image = Initramfs::new()
        .reproducible(true)
        .busybox(busybox)?
        .essential_dev()
        .file("/init", 0o755, INIT.as_bytes().to_vec());
    for (dir, mode) in DIRS {
        image = image.dir(dir, *mode);
    }
    let bytes = image.to_bytes(Compression::Gzip)?;
    crate::atomic::write_file(&path, &bytes)?;
    Ok(path)
}

/// A fresh marker for one run.
pub fn marker() -> anyhow::Result<String> {
    let mut b = [0u8; 12];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Booting,
    Running,
    Done,
}

/// Splits the console stream: boot messages (stderr with --verbose, else dropped), the
/// command's bytes (stdout, unchanged), the end marker with the status.
pub struct ExecFilter {
    start: Vec<u8>,
    end: Vec<u8>,
    state: State,
    pending: Vec<u8>,
    verbose: bool,
    started: Instant,
    pub boot_time: Option<Duration>,
    pub command_time: Option<Duration>,
    pub status: Option<i32>,
    out: Box<dyn Write + Send>,
}

impl ExecFilter {
    pub fn new(marker: &str, verbose: bool, started: Instant, out: Box<dyn Write + Send>) -> Self {
        ExecFilter {
            start: format!("DOMBOOT-START-{marker}\n").into_bytes(),
            end: format!("DOMBOOT-END-{marker} ").into_bytes(),
            state: State::Booting,
            pending: Vec::new(),
            verbose,
            started,
            boot_time: None,
            command_time: None,
            status: None,
            out,
        }
    }

    fn emit(&mut self, upto: usize) {
        let bytes: Vec<u8> = self.pending.drain(..upto).collect();
        let _ = self.out.write_all(&bytes);
        let _ = self.out.flush();
    }

    fn log(&mut self, upto: usize) {
        let bytes: Vec<u8> = self.pending.drain(..upto).collect();
        if self.verbose {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&bytes);
            let _ = err.flush();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl super::ConsoleFilter for ExecFilter {
    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        loop {
            match self.state {
                State::Booting => match find(&self.pending, &self.start) {
                    Some(i) => {
                        self.log(i);
                        self.pending.drain(..self.start.len());
                        self.state = State::Running;
                        self.boot_time = Some(self.started.elapsed());
                    }
                    None => {
                        let keep = self.start.len() - 1;
                        let upto = self.pending.len().saturating_sub(keep);
                        self.log(upto);
                        return;
                    }
                },
                State::Running => match find(&self.pending, &self.end) {
                    Some(i) => {
                        let rest = &self.pending[i + self.end.len()..];
                        let Some(nl) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                            // The status has not arrived yet: flush what precedes the marker.
                            self.emit(i);
                            return;
                        };
                        let status = String::from_utf8_lossy(&rest[..nl]).trim().parse().ok();
                        self.emit(i);
                        self.pending.drain(..self.end.len() + nl + 1);
                        self.status = status;
                        self.command_time =
                            Some(self.started.elapsed() - self.boot_time.unwrap_or_default());
                        self.state = State::Done;
                    }
                    None => {
                        let keep = self.end.len() - 1;
                        let upto = self.pending.len().saturating_sub(keep);
                        self.emit(upto);
                        return;
                    }
                },
                State::Done => {
                    let all = self.pending.len();
                    self.log(all);
                    return;
                }
            }
        }
    }

    fn finish(&mut self) {
        let all = self.pending.len();
        match self.state {
            State::Running => self.emit(all),
            _ => self.log(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::ConsoleFilter;
    use std::sync::{Arc, Mutex};

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Feeds `stream` in chunks of every size and checks output and status.
    #[test]
    fn markers_are_stripped_at_any_chunk_boundary() {
        let payload: Vec<u8> = (0..=255u8)
            .chain(b"no newline at the end".iter().copied())
            .collect();
        let mut stream = b"[    0.1] kernel noise\nDOMBOOT-START-abc\n".to_vec();
        stream.extend_from_slice(&payload);
        stream.extend_from_slice(b"DOMBOOT-END-abc 42\nreboot: Restarting system\n");
        for chunk in 1..stream.len() {
            let out = Arc::new(Mutex::new(Vec::new()));
            let mut f =
                ExecFilter::new("abc", false, Instant::now(), Box::new(Shared(out.clone())));
            for piece in stream.chunks(chunk) {
                f.write(piece);
            }
            f.finish();
            assert_eq!(*out.lock().unwrap(), payload, "chunk size {chunk}");
            assert_eq!(f.status, Some(42));
        }
    }

    #[test]
    fn a_guest_that_dies_early_has_no_status() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut f = ExecFilter::new("abc", false, Instant::now(), Box::new(Shared(out.clone())));
        f.write(b"DOMBOOT-START-abc\npartial");
        f.finish();
        assert_eq!(&*out.lock().unwrap(), b"partial");
        assert_eq!(f.status, None);
    }
}
