//! The guest's vsock under TCG: rust-vmm's `vhost-device-vsock` daemon serves QEMU's
//! `vhost-user-vsock-pci` and speaks Firecracker's hybrid vsock on the `--vsock` socket,
//! as the KVM backend's own device does. One daemon per run, on a vhost-user socket in the
//! run's private temporary folder; stopped when the run ends, however it ends.
//!
//! Where vhost-device-vsock 0.3 differs from the KVM device, domboot makes up for it:
//! - it removes whatever is at the socket's path before it binds there: domboot refuses
//!   an existing path first, with the KVM backend's message;
//! - it never ends by itself (it serves the next frontend when QEMU goes) and, killed,
//!   leaves its socket behind: domboot stops it and removes the socket;
//! - it prints argument errors on stdout and exits 0: its output goes to a log in the
//!   run's folder (never to domboot's stdout, the guest's console or `--exec`'s output),
//!   quoted when it fails to start.
//!
//! What remains different (the README's device section lists it for users):
//! - its answer to `CONNECT <port>` is `OK <port>` with the guest's port, where Firecracker
//!   and the KVM backend answer with the host side's port (1 << 30 and up);
//! - no half-close either way (rust-vmm/vhost-device#874): the guest's `SHUT_WR` is
//!   dropped, the host stream's EOF becomes a full shutdown for the guest;
//! - a guest's connection to a port with no `SOCKET_P` listener gets no RST (its
//!   `enq_rst` is a TODO): the guest's connect times out after 2 s;
//! - it reads the `CONNECT` line through a buffered reader it then drops: bytes sent
//!   before `OK` may be lost;
//! - host connections made before the guest's driver has set up the queues are closed
//!   unread, and under heavy load runs whose clients retried them failed 5 times in 23
//!   (a device whose queues never worked, or a connection reset mid-echo), none of 26
//!   whose clients connected after the guest said it was ready.

use super::child::log_tail;
use super::devices::VsockArg;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program's name, on PATH and in the cache.
const PROGRAM: &str = "vhost-device-vsock";
/// The environment variable that names the program to use.
pub const ENV: &str = "DOMBOOT_VHOST_DEVICE_VSOCK";
/// How long the daemon may take to create its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where scripts/setup.sh installs it (`cargo install --root`).
pub fn cached() -> PathBuf {
    super::exec::cache_dir().join("vhost-device-vsock/bin/vhost-device-vsock")
}

/// vhost-device-vsock: $DOMBOOT_VHOST_DEVICE_VSOCK, the cache's, then one on PATH.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cached = cached();
    if super::rootfs::is_executable(&cached) {
        return Some(cached);
    }
    super::rootfs::find_program(PROGRAM)
}

/// Why there is no daemon, and how to install one.
pub fn missing() -> String {
    format!(
        "no {PROGRAM} found (looked at ${ENV}, {} and on PATH): under TCG the guest's vsock \
         is QEMU's vhost-user-vsock-pci served by rust-vmm's {PROGRAM}; \
         `scripts/setup.sh --install-only` installs it",
        cached().display()
    )
}

/// The running daemon of one run; dropping it stops the daemon and removes the hybrid
/// vsock's socket.
pub struct Daemon {
    child: Child,
    /// The hybrid vsock's socket (`--vsock`'s SOCKET).
    socket: PathBuf,
    /// The vhost-user socket QEMU connects to.
    vhost: PathBuf,
    log: PathBuf,
    /// How it ended, once it has (said once).
    ended: Option<std::process::ExitStatus>,
}

impl Daemon {
    /// Starts `program` for `vsock` with its vhost-user socket and log in `dir` (the run's
    /// private folder), and waits until it listens.
    pub fn start(
        program: &Path,
        vsock: &VsockArg,
        dir: &Path,
        verbose: bool,
    ) -> anyhow::Result<Daemon> {
        // vhost-device-vsock would remove whatever is there: a socket another VM serves,
        // or a file. The KVM backend refuses the path; so does this.
        if vsock.socket.symlink_metadata().is_ok() {
            bail!(
                "vsock: {}",
                domboot_vmm::devices::virtio::vsock::muxer::MuxerError::Exists(
                    vsock.socket.clone()
                )
            );
        }
        let vhost = dir.join("vsock.sock");
        let log = dir.join("vsock.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(program);
        super::child::dies_with_domboot(&mut cmd);
        cmd.arg("--guest-cid")
            .arg(vsock.cid.to_string())
            .arg("--socket")
            .arg(&vhost)
            .arg("--uds-path")
            .arg(&vsock.socket)
            // Its errors only: a RUST_LOG meant for something else would have it log
            // every connection (and, before the guest's driver is up, every poll).
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if verbose {
            eprintln!("domboot: running {cmd:?}");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let mut daemon = Daemon {
            child,
            socket: vsock.socket.clone(),
            vhost,
            log,
            ended: None,
        };
        daemon.wait_for_socket(program)?;
        Ok(daemon)
    }

    /// The vhost-user socket, for QEMU's `-chardev socket,path=`.
    pub fn vhost_socket(&self) -> &Path {
        &self.vhost
    }

    fn wait_for_socket(&mut self, program: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        // It binds the hybrid socket first, then the vhost-user one.
        while !self.vhost.exists() {
            if let Some(status) = self.child.try_wait().context("cannot wait for it")? {
                self.ended = Some(status);
                bail!(
                    "{} for the vsock on {} ended at once ({status}){}",
                    program.display(),
                    self.socket.display(),
                    log_tail(&self.log)
                );
            }
            if started.elapsed() >= START_TIMEOUT {
                bail!(
                    "{} did not create its socket {} within {} s{}",
                    program.display(),
                    self.vhost.display(),
                    START_TIMEOUT.as_secs(),
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Once, after the daemon has ended while QEMU runs: what happened, for a warning.
    /// The guest keeps running without a working vsock (as it would without the device);
    /// the hybrid socket is removed, so host programs find no VM there.
    pub fn gone(&mut self) -> Option<String> {
        if self.ended.is_some() {
            return None;
        }
        let status = self.child.try_wait().ok()??;
        self.ended = Some(status);
        remove_socket(&self.socket);
        let how = super::child::how_it_ended(status);
        Some(format!(
            "{PROGRAM} serving the guest's vsock on {} (pid {}) {how} while the guest ran; \
             the guest's vsock no longer works{}",
            self.socket.display(),
            self.child.id(),
            log_tail(&self.log)
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // It serves the next frontend after QEMU goes and never ends by itself.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Killed, it leaves the socket it bound (checked absent before it started).
        remove_socket(&self.socket);
    }
}

/// Removes the hybrid socket, if a socket is still at that path.
fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_socket())
    {
        let _ = std::fs::remove_file(path);
    }
}
