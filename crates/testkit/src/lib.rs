//! Test support shared by the crates' integration tests: locating the real kernels tests run
//! against (the prebuilt tiny kernels in ../shared and the Debian kernels that
//! scripts/setup.sh fetches into the cache).

pub mod nested;

use std::path::PathBuf;

/// `$DOMBOOT_SHARED`, or the `shared` folder beside the repository.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOMBOOT_SHARED") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared");
    assert!(
        dir.join("kernels").is_dir(),
        "the test kernels are missing: expected {} (set DOMBOOT_SHARED)",
        dir.display()
    );
    dir
}

pub fn shared_kernel(name: &str) -> PathBuf {
    shared_dir().join("kernels").join(name)
}

/// `$DOMBOOT_CACHE`, or `~/.cache/domboot`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("DOMBOOT_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/domboot"),
    }
}

/// A Debian kernel fetched by scripts/setup.sh (`flavour` is "cloud" or "generic").
pub struct DebianKernel {
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    /// e.g. "6.1.0-56-cloud-amd64"
    pub release: String,
    /// e.g. "6.1.192-2"
    pub package_version: String,
}

pub fn debian_kernel(flavour: &str) -> DebianKernel {
    let dir = cache_dir().join("debian").join(flavour);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run scripts/setup.sh --install-only to fetch the Debian kernels",
                    dir.join(name).display()
                )
            })
            .trim()
            .to_string()
    };
    DebianKernel {
        vmlinuz: dir.join("vmlinuz"),
        config: dir.join("config"),
        release: read("kernel-release"),
        package_version: read("package-version"),
    }
}

/// A test kernel scripts/setup.sh builds into the cache (`$CACHE/kernels/NAME/`).
pub struct BuiltKernel {
    pub bzimage: PathBuf,
    /// Its whole .config.
    pub config: PathBuf,
}

/// The tiny x86_64 kernel with VIRTIO_MMIO_CMDLINE_DEVICES that scripts/setup.sh builds:
/// tinyconfig with a serial console, an initramfs, virtio-mmio, virtio-blk, the virtio
/// console and virtio-rng built in, and no ACPI (so it finds virtio-mmio devices only
/// through `virtio_mmio.device=` on its command line, and ends with `reboot -f`).
pub fn virtio_mmio_cmdline_kernel() -> BuiltKernel {
    let dir = cache_dir().join("kernels/virtio-mmio-cmdline");
    let kernel = BuiltKernel {
        bzimage: dir.join("bzImage"),
        config: dir.join("config"),
    };
    assert!(
        kernel.bzimage.is_file() && kernel.config.is_file(),
        "{} missing: run scripts/setup.sh --install-only to build it",
        kernel.bzimage.display()
    );
    kernel
}

/// The tiny kernels of ../shared/kernels: (name, payload format, is 64-bit, relocatable, PVH).
pub const TINY_KERNELS: &[(&str, &str, bool, bool, bool)] = &[
    ("x64-pvh-gzip", "gzip", true, true, true),
    ("x64-pvh-bzip2", "bzip2", true, true, true),
    ("x64-pvh-lzma", "lzma", true, true, true),
    ("x64-pvh-xz", "xz", true, true, true),
    ("x64-pvh-lzo", "lzo", true, true, true),
    ("x64-pvh-lz4", "lz4", true, true, true),
    ("x64-pvh-zstd", "zstd", true, true, true),
    ("x64-norelo-gzip", "gzip", true, false, false),
    ("i386-norelo-xz", "xz", false, false, false),
];

/// Static busybox for x86_64 guests (Debian's busybox-static).
pub fn busybox() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    assert!(
        p.exists(),
        "/bin/busybox missing: run scripts/setup.sh --install-only (busybox-static)"
    );
    p
}

/// Static busybox for i386 guests, which scripts/setup.sh unpacks into the cache.
pub fn busybox_i386() -> PathBuf {
    let p = cache_dir().join("debian/busybox-i386/bin/busybox");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup.sh --install-only",
        p.display()
    );
    p
}

/// Compiles `vsock_echo.c` (both ends of the vsock echo checks: busybox has no vsock
/// tools) with `gcc -static -O2` into `dir`, and returns the binary's path.
pub fn vsock_echo(dir: &std::path::Path) -> PathBuf {
    let out = dir.join("vsock-echo");
    gcc_static("vsock_echo.c", include_str!("vsock_echo.c"), &out)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Compiles the C program `source` (called `name` in messages) with `gcc -static -O2
/// -Wall` into the executable `out`: small tools for guests that have no libraries.
pub fn gcc_static(name: &str, source: &str, out: &std::path::Path) -> Result<(), String> {
    let src = out.with_extension("c");
    std::fs::write(&src, source).map_err(|e| format!("{}: {e}", src.display()))?;
    let result = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(out)
        .arg(&src)
        .output();
    let _ = std::fs::remove_file(&src);
    let result = result
        .map_err(|e| format!("gcc: {e} (run scripts/setup.sh --install-only: gcc libc6-dev)"))?;
    if !result.status.success() {
        return Err(format!(
            "gcc -static {name} failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(())
}

/// A field (`"Rss:"`, `"VmFlags:"`, ...) of the mapping of this process that holds `addr`,
/// from /proc/self/smaps, trimmed; `None` when no mapping holds it or it has no such field.
pub fn smaps_field(addr: usize, field: &str) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            inside = (a..b).contains(&addr);
        } else if inside && let Some(value) = line.strip_prefix(field) {
            return Some(value.trim().to_string());
        }
    }
    None
}

/// What the guest's /init reports.
pub struct GuestReport {
    pub marker: Option<String>,
    pub cmdline: Option<String>,
    pub payload_sum: Option<String>,
    pub mem_total_kib: Option<u64>,
    /// Everything the guest printed on its serial console.
    pub console: String,
}

/// The value after `KEY ` on a line of its own in a guest's report (`\r` and surrounding
/// blanks trimmed): the report lines the tests' /init scripts print, such as `SUM abc...`.
pub fn report_field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(&tag).map(str::trim))
}

/// A random-enough marker so a test cannot pass on stale output.
pub fn marker() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("domboot-{:x}-{}", nanos, std::process::id())
}

/// Builds a gzip'd newc initramfs (with the host's `cpio` and `gzip`, an oracle
/// independent of domboot's own writer) holding `busybox`, a `/payload` file and an /init
/// that prints the marker, /proc/cmdline, the payload's SHA-256 and MemTotal, then reboots.
/// The /init first lowers the console log level to emergencies only: a late kernel line
/// (the TSC's refined calibration, seen in CI) once landed inside the CMDLINE line.
pub fn report_initramfs(
    dir: &std::path::Path,
    busybox: &std::path::Path,
    marker: &str,
    payload: &[u8],
) -> PathBuf {
    let init = format!(
        "#!/bin/busybox sh\n\
         B=/bin/busybox\n\
         $B mount -t proc proc /proc\n\
         echo 1 > /proc/sys/kernel/printk\n\
         echo\n\
         echo \"MARKER $(echo {marker})\"\n\
         echo \"CMDLINE $($B cat /proc/cmdline)\"\n\
         echo \"SUM $($B sha256sum /payload | $B cut -d' ' -f1)\"\n\
         echo \"MEM $($B grep MemTotal /proc/meminfo | $B tr -s ' ' | $B cut -d' ' -f2)\"\n\
         $B reboot -f\n"
    );
    busybox_initramfs(dir, busybox, marker, &init, &[("payload", payload)])
}

/// Builds `dir/initramfs-NAME.cpio.gz` with the host's `cpio` and `gzip`: `busybox` as
/// /bin/busybox, `init` as the executable /init, the given extra files, and empty /proc,
/// /sys and /dev.
pub fn busybox_initramfs(
    dir: &std::path::Path,
    busybox: &std::path::Path,
    name: &str,
    init: &str,
    files: &[(&str, &[u8])],
) -> PathBuf {
    let root = dir.join(format!("root-{name}"));
    for d in ["bin", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for (path, bytes) in files {
        std::fs::write(root.join(path), bytes).unwrap();
    }
    std::fs::write(root.join("init"), init).unwrap();
    set_exec(&root.join("init"));
    set_exec(&root.join("bin/busybox"));
    let out = dir.join(format!("initramfs-{name}.cpio.gz"));
    host_cpio(&root, &out, true).unwrap_or_else(|e| panic!("building the initramfs: {e}"));
    std::fs::remove_dir_all(&root).unwrap();
    out
}

/// [`busybox_initramfs`] with kernel modules too: each of `modules` (paths in the modules
/// tree `tree`, such as `kernel/drivers/virtio/virtio.ko`) as /modules/NAME.ko, and their
/// names, in the order given, in /modules/list, for an `init` that loads them
/// (`for m in $(cat /modules/list); do insmod /modules/$m.ko; done`).
pub fn busybox_initramfs_with_modules(
    dir: &std::path::Path,
    busybox: &std::path::Path,
    name: &str,
    init: &str,
    tree: &std::path::Path,
    modules: &[&str],
) -> PathBuf {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut list = String::new();
    for m in modules {
        let path = tree.join(m);
        let stem = path
            .file_stem()
            .unwrap_or_else(|| panic!("module path {m} names no file"))
            .to_string_lossy()
            .into_owned();
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("module {}: {e}", path.display()));
        files.push((format!("modules/{stem}.ko"), bytes));
        list.push_str(&stem);
        list.push('\n');
    }
    files.push(("modules/list".into(), list.into_bytes()));
    std::fs::create_dir_all(dir.join(format!("root-{name}/modules"))).unwrap();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    busybox_initramfs(dir, busybox, name, init, &refs)
}

/// An initramfs whose /init is no program and which has no /sbin/init or /bin/sh to fall
/// back on: Linux panics with "No working init found".
pub fn no_init_initramfs(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("root-no-init");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("init"), "not a program\n").unwrap();
    set_exec(&root.join("init"));
    let out = dir.join("no-init.cpio");
    host_cpio(&root, &out, false).unwrap_or_else(|e| panic!("building the initramfs: {e}"));
    std::fs::remove_dir_all(&root).unwrap();
    out
}

/// Packs the folder `root` as a newc cpio archive at `out` with the host's `find`, `cpio`
/// and (with `gzip`) `gzip -1`: an oracle independent of domboot's own writer.
pub fn host_cpio(root: &std::path::Path, out: &std::path::Path, gzip: bool) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let script = format!(
        "cd '{}' && find . | LC_ALL=C sort | cpio -o -H newc --quiet {} > '{}'",
        root.display(),
        if gzip { "| gzip -1" } else { "" },
        out.display()
    );
    let status = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cpio of {} failed ({status})", root.display()))
    }
}

fn set_exec(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Boots `image` (anything QEMU's `-kernel` takes) under TCG and collects what the guest
/// printed. The guest ends the VM itself (reboot with -no-reboot); `timeout` guards hangs.
pub fn qemu_boot(
    image: &std::path::Path,
    memory: &str,
    extra: &[&str],
    timeout: std::time::Duration,
) -> GuestReport {
    let mut args = vec!["-M", "pc", "-m", memory];
    args.extend_from_slice(extra);
    let (_, console) = qemu_run(image, &args, timeout);
    let field = |key: &str| {
        // Firmware may have printed on the same line without a newline.
        let tag = format!("{key} ");
        console.lines().find_map(|l| {
            let l = l.trim_end_matches('\r');
            l.find(&tag).map(|at| l[at + tag.len()..].to_string())
        })
    };
    GuestReport {
        marker: field("MARKER"),
        cmdline: field("CMDLINE"),
        payload_sum: field("SUM"),
        mem_total_kib: field("MEM").and_then(|m| m.trim().parse().ok()),
        console,
    }
}

/// Runs `qemu-system-x86_64 -accel tcg -no-reboot -nographic -nodefaults -serial stdio
/// ARGS... -kernel IMAGE` until it exits or `timeout` passes (then kills it). Returns its
/// exit status (`None` on timeout) and everything it printed (stdout, then stderr).
pub fn qemu_run(
    image: &std::path::Path,
    args: &[&str],
    timeout: std::time::Duration,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg"])
        .args(args)
        .args([
            "-no-reboot",
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 runs (scripts/setup.sh installs it)");
    // Drain the pipes while the guest runs: a full pipe would stall QEMU.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for qemu") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut console = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    console.push_str(&String::from_utf8_lossy(&err.join().unwrap_or_default()));
    (status, console)
}

/// SHA-256 of `data` as lower-case hex, computed by the host's `sha256sum`.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
