//! `run --exec --rootfs host`: the guest's / is the host's /, read-only through virtio-fs
//! (one virtiofsd per shared folder; QEMU's vhost-user-fs-pci devices under TCG, the KVM
//! backend's own virtio-mmio vhost-user-fs devices under KVM) under a tmpfs
//! overlay, so the command runs with the host's tools in the host's current directory and
//! its writes stay in the guest; `--rwdir`/`--rodir` share more folders at the same paths,
//! `--user` runs the command as the calling user.
//!
//! For kernels that cannot run the host's programs or load virtiofs, and where no
//! virtiofsd is found, the default falls back to the busybox userland with a one-line
//! notice, and an explicit `--rootfs host` is an error.

mod virtiofsd;

pub use virtiofsd::{ServerWatch, Servers};

use anyhow::{Context as _, bail};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `--rootfs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RootfsArg {
    /// The host's / read-only through virtio-fs, writes in a tmpfs overlay.
    Host,
    /// A generated busybox initramfs.
    Busybox,
}

/// The modules the guest needs for the host's /: virtiofs (with fuse) and overlay. Debian's
/// kernels have them as modules; a kernel with them built in lists them in
/// modules.builtin.
pub const MODULES: [&str; 2] = ["virtiofs", "overlay"];

/// The virtio transports the virtio-fs devices sit on: virtio-mmio on the KVM backend,
/// virtio-pci under QEMU. Loaded where the kernel has them as modules (the accelerator is
/// chosen after the initramfs is built); a kernel without them has them built in.
pub const TRANSPORTS: [&str; 2] = ["virtio_mmio", "virtio_pci"];

/// The virtio-fs tag of the host's /.
pub const ROOT_TAG: &str = "domboot-root";

/// The guest half (see the script's comment), after the per-run settings.
const GUEST_SCRIPT: &str = include_str!("guest.sh");

/// One folder of the host the guest mounts through its own virtiofsd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
    pub writable: bool,
}

/// Everything a host-rootfs run needs, checked before anything starts.
#[derive(Debug)]
pub struct HostRootfs {
    pub virtiofsd: PathBuf,
    /// The host's / first, then --rodir/--rwdir, parents before what is below them.
    pub shares: Vec<Share>,
    cwd: PathBuf,
    /// (uid, gid) with --user.
    user: Option<(u32, u32)>,
    setpriv: Option<PathBuf>,
    home: OsString,
    path: OsString,
}

/// The userland an exec run gets.
#[derive(Debug)]
pub enum Rootfs {
    Busybox,
    Host(HostRootfs),
}

/// What the command line asks for.
pub struct Request<'a> {
    pub choice: Option<RootfsArg>,
    pub rwdir: &'a [PathBuf],
    pub rodir: &'a [PathBuf],
    pub user: bool,
    /// --initrd or a configuration's ramdisk adds files to the initramfs.
    pub user_initrds: bool,
}

impl Request<'_> {
    /// The options that only make sense with the host's /, as the user wrote them.
    fn host_only_flags(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if !self.rwdir.is_empty() {
            f.push("--rwdir");
        }
        if !self.rodir.is_empty() {
            f.push("--rodir");
        }
        if self.user {
            f.push("--user");
        }
        f
    }
}

impl Rootfs {
    pub fn host(&self) -> Option<&HostRootfs> {
        match self {
            Rootfs::Host(h) => Some(h),
            Rootfs::Busybox => None,
        }
    }
}

/// [`decide`] for an exec run's options (both backends have virtio-fs, so the accelerator
/// does not matter). `user_initrds`: --initrd or the configuration's ramdisk adds files to
/// the initramfs.
pub fn for_run(
    args: &super::Args,
    kernel: &Path,
    modules: Option<&Path>,
    user_initrds: bool,
) -> anyhow::Result<Rootfs> {
    let req = Request {
        choice: args.rootfs,
        rwdir: &args.rwdir,
        rodir: &args.rodir,
        user: args.user,
        user_initrds,
    };
    decide(&req, kernel, modules)
}

/// The userland for this run: `--rootfs` as asked (an error naming what is missing when
/// the host's / cannot work), else the host's / where it works and busybox with a notice
/// on stderr where it does not. --rwdir, --rodir and --user ask for the host's /.
/// `modules` is the kernel's modules tree.
pub fn decide(req: &Request<'_>, kernel: &Path, modules: Option<&Path>) -> anyhow::Result<Rootfs> {
    if std::fs::metadata(kernel).is_err() {
        // Building the image reports this kernel in its own words.
        return Ok(Rootfs::Busybox);
    }
    let flags = req.host_only_flags();
    match req.choice {
        Some(RootfsArg::Busybox) if !flags.is_empty() => bail!(
            "{}: only with --rootfs host; the busybox userland has no host folders or users",
            flags.join(", ")
        ),
        Some(RootfsArg::Busybox) => return Ok(Rootfs::Busybox),
        // Files added to the initramfs are meant for its /, which the host's would hide.
        None if req.user_initrds && flags.is_empty() => {
            eprintln!(
                "domboot: --exec runs in a busybox userland, not the host's: the added \
                 initramfs (--initrd or the configuration's ramdisk) goes with busybox's / \
                 (--rootfs host takes the host's / instead)"
            );
            return Ok(Rootfs::Busybox);
        }
        _ => {}
    }
    let virtiofsd = match unavailable(kernel, modules) {
        Ok(v) => v,
        Err(why) if req.choice == Some(RootfsArg::Host) => bail!("--rootfs host: {why}"),
        Err(why) if !flags.is_empty() => {
            bail!(
                "{}: only with the host's / as the guest's (--rootfs host), which cannot \
                 work here: {why}",
                flags.join(", ")
            )
        }
        Err(why) => {
            eprintln!("domboot: --exec runs in a busybox userland, not the host's: {why}");
            return Ok(Rootfs::Busybox);
        }
    };
    Ok(Rootfs::Host(HostRootfs::new(req, virtiofsd)?))
}

/// The virtiofsd to use, or why the host's / cannot be the guest's here.
fn unavailable(kernel: &Path, modules: Option<&Path>) -> Result<PathBuf, String> {
    if super::exec::is_32bit(kernel) {
        return Err(format!(
            "{} is a 32-bit kernel, which cannot run the host's 64-bit programs",
            kernel.display()
        ));
    }
    let Some(dir) = modules else {
        return Err(format!(
            "no modules tree matches {} to load virtiofs and overlay from (give one with \
             --modules DIR)",
            kernel.display()
        ));
    };
    let names: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    super::modules::resolve(dir, &names).map_err(|e| format!("{e:#}"))?;
    virtiofsd::find().ok_or_else(|| {
        format!(
            "no virtiofsd found (looked at $DOMBOOT_VIRTIOFSD, {}, on PATH and at \
             /usr/libexec/virtiofsd; scripts/setup.sh installs it)",
            virtiofsd::cached().display()
        )
    })
}

impl HostRootfs {
    fn new(req: &Request<'_>, virtiofsd: PathBuf) -> anyhow::Result<HostRootfs> {
        let mut shares = vec![Share {
            tag: ROOT_TAG.into(),
            path: PathBuf::from("/"),
            writable: false,
        }];
        let dirs = req
            .rodir
            .iter()
            .map(|d| ("--rodir", d, false))
            .chain(req.rwdir.iter().map(|d| ("--rwdir", d, true)));
        for (i, (flag, dir, writable)) in dirs.enumerate() {
            let path = std::fs::canonicalize(dir)
                .with_context(|| format!("{flag} {}: no such folder", dir.display()))?;
            if !path.is_dir() {
                bail!("{flag} {}: not a folder", dir.display());
            }
            if path == Path::new("/") {
                bail!(
                    "{flag} {}: that is the host's / itself, which the guest sees already \
                     (read-only, writes kept in memory); share a folder below it",
                    dir.display()
                );
            }
            shares.push(Share {
                tag: format!("domboot-{}{i}", if writable { "rw" } else { "ro" }),
                path,
                writable,
            });
        }
        // Parents first, so a folder shared below another is mounted on top of it.
        shares.sort_by_key(|s| s.path.components().count());
        let setpriv = if req.user {
            let setpriv = find_program("setpriv").context(
                "--user runs the command through the host's setpriv (util-linux); none on PATH",
            )?;
            check_setpriv(&setpriv)?;
            Some(setpriv)
        } else {
            None
        };
        let user = req.user.then(|| {
            // SAFETY: getuid and getgid cannot fail and touch no memory of ours.
            unsafe { (libc::getuid(), libc::getgid()) }
        });
        let home = match (req.user, std::env::var_os("HOME")) {
            (true, Some(h)) if !h.is_empty() => h,
            (true, _) => "/".into(),
            (false, _) => "/root".into(),
        };
        Ok(HostRootfs {
            virtiofsd,
            shares,
            // A folder that is gone (or unreadable) leaves the command at /.
            cwd: std::env::current_dir().unwrap_or_else(|_| "/".into()),
            user,
            setpriv,
            home,
            path: std::env::var_os("PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| {
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
                }),
        })
    }

    /// /domboot/rootfs.sh of the per-run initramfs: the settings, then the guest half.
    pub fn guest_script(&self) -> Vec<u8> {
        let mut s = Vec::new();
        let mut set = |name: &str, value: &[u8]| {
            s.extend_from_slice(name.as_bytes());
            s.push(b'=');
            s.extend_from_slice(&quote(value));
            s.push(b'\n');
        };
        set("DOMBOOT_CWD", self.cwd.as_os_str().as_bytes());
        let user = self
            .user
            .map(|(u, g)| format!("{u}:{g}"))
            .unwrap_or_default();
        set("DOMBOOT_USER", user.as_bytes());
        let setpriv = self.setpriv.as_deref().unwrap_or(Path::new(""));
        set("DOMBOOT_SETPRIV", setpriv.as_os_str().as_bytes());
        set("DOMBOOT_HOME", self.home.as_bytes());
        set("DOMBOOT_PATH", self.path.as_bytes());
        s.extend_from_slice(b"shares() {\n");
        for share in self.shares.iter().filter(|s| s.tag != ROOT_TAG) {
            s.extend_from_slice(b"    share ");
            s.extend_from_slice(&quote(share.tag.as_bytes()));
            s.push(b' ');
            s.extend_from_slice(&quote(share.path.as_os_str().as_bytes()));
            s.extend_from_slice(if share.writable {
                b" rw || return 1\n"
            } else {
                b" ro || return 1\n"
            });
        }
        s.extend_from_slice(b"    :\n}\n");
        s.extend_from_slice(GUEST_SCRIPT.as_bytes());
        s
    }
}

/// `value` as one single-quoted shell word (any bytes, quotes and newlines included).
fn quote(value: &[u8]) -> Vec<u8> {
    let mut q = vec![b'\''];
    for &b in value {
        if b == b'\'' {
            q.extend_from_slice(b"'\\''");
        } else {
            q.push(b);
        }
    }
    q.push(b'\'');
    q
}

/// `name` on PATH, as an absolute path.
pub(in crate::run) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// The guest runs the command through `setpriv --reuid --regid --clear-groups`, util-linux's
/// options: busybox's setpriv (the first one on PATH on some systems) has none of them and
/// would fail in the guest after the whole boot, printing only its usage. Its `--help` says
/// which one this is, so a setpriv without --reuid is refused before booting.
fn check_setpriv(setpriv: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(setpriv)
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("--user: running {} --help", setpriv.display()))?;
    let text = [out.stdout, out.stderr].concat();
    if text.windows(b"--reuid".len()).any(|w| w == b"--reuid") {
        return Ok(());
    }
    let which = if text.windows(b"BusyBox".len()).any(|w| w == b"BusyBox") {
        " (busybox's)"
    } else {
        ""
    };
    bail!(
        "--user runs the command through setpriv --reuid --regid --clear-groups \
         (util-linux's); {}{which}, the first setpriv on PATH, has no --reuid",
        setpriv.display()
    )
}

pub(in crate::run) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte() {
        assert_eq!(quote(b"a b"), b"'a b'");
        assert_eq!(quote(b"it's"), b"'it'\\''s'");
        assert_eq!(quote(b"x\ny"), b"'x\ny'");
    }

    #[test]
    fn busybox_refuses_host_flags_and_host_needs_modules() {
        // Any file that exists stands in for the kernel: these refusals come before it is read.
        let kernel = std::env::current_exe().unwrap();
        let dirs = [PathBuf::from("/tmp")];
        let req = Request {
            choice: Some(RootfsArg::Busybox),
            rwdir: &dirs,
            rodir: &[],
            user: false,
            user_initrds: false,
        };
        let err = decide(&req, &kernel, None).unwrap_err();
        assert!(
            err.to_string().contains("--rwdir: only with --rootfs host"),
            "{err}"
        );
        let req = Request {
            choice: Some(RootfsArg::Host),
            rwdir: &[],
            rodir: &[],
            user: false,
            user_initrds: false,
        };
        // KVM has virtio-fs too: what is missing here is the modules tree.
        let err = decide(&req, &kernel, None).unwrap_err();
        assert!(
            err.to_string().contains("--rootfs host: no modules tree"),
            "{err}"
        );
        let req = Request {
            choice: None,
            rwdir: &[],
            rodir: &[],
            user: false,
            user_initrds: false,
        };
        assert!(matches!(
            decide(&req, &kernel, None).unwrap(),
            Rootfs::Busybox
        ));
        // Files added to the initramfs keep busybox's /, even where the host's would work.
        let req = Request {
            user_initrds: true,
            ..req
        };
        assert!(matches!(
            decide(&req, &kernel, None).unwrap(),
            Rootfs::Busybox
        ));
    }
}
