//! The host half of the host rootfs: one virtiofsd per shared folder, each serving QEMU's
//! vhost-user-fs-pci device on a Unix socket in a temporary folder; all stopped (and the
//! folder removed) when the run ends, however it ends. One that ends while the guest runs
//! (killed, crashed) ends the run too ([`ServerWatch`]): the guest's file requests would
//! otherwise wait forever.

use super::Share;
use crate::run::child::log_tail;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a virtiofsd may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where scripts/setup.sh installs virtiofsd (`cargo install --root`).
pub fn cached() -> PathBuf {
    super::super::exec::cache_dir().join("virtiofsd/bin/virtiofsd")
}

/// virtiofsd: $DOMBOOT_VIRTIOFSD, the cache's, one on PATH, then QEMU's old place.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DOMBOOT_VIRTIOFSD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cached = cached();
    if super::is_executable(&cached) {
        return Some(cached);
    }
    if let Some(p) = super::find_program("virtiofsd") {
        return Some(p);
    }
    let libexec = PathBuf::from("/usr/libexec/virtiofsd");
    super::is_executable(&libexec).then_some(libexec)
}

/// One running virtiofsd.
struct Server {
    child: Child,
    tag: String,
    /// The folder it shares.
    path: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

/// The virtiofsd processes of one run; dropping this stops them.
pub struct Servers {
    servers: ServerWatch,
    _dir: tempfile::TempDir,
}

/// The running virtiofsd processes, as the code that supervises the VM sees them.
#[derive(Clone, Default)]
pub struct ServerWatch(Arc<Mutex<Vec<Server>>>);

impl ServerWatch {
    fn lock(&self) -> MutexGuard<'_, Vec<Server>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first virtiofsd that has ended, described: which folder, its pid, how it
    /// ended and the end of its log.
    pub fn gone(&self) -> Option<String> {
        let mut servers = self.lock();
        // Once the VM stops, the others end too (status 0, their frontend gone): one that
        // failed (a signal, a non-zero status) is the one to name.
        let ended: Vec<(usize, std::process::ExitStatus)> = servers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.child.try_wait().ok()??)))
            .collect();
        let (index, status) = ended
            .iter()
            .find(|(_, st)| !st.success())
            .or_else(|| ended.first())
            .copied()?;
        servers.get_mut(index).map(|s| {
            let how = crate::run::child::how_it_ended(status);
            format!(
                "virtiofsd serving {} to the guest (pid {}) {how} while the guest ran, so the \
                 guest lost those files{}",
                s.path.display(),
                s.child.id(),
                log_tail(&s.log)
            )
        })
    }

    /// [`ServerWatch::gone`], waiting up to `patience` for one to end: a virtiofsd whose
    /// socket closed has not always been reaped yet.
    pub fn gone_within(&self, patience: Duration) -> Option<String> {
        let until = Instant::now() + patience;
        loop {
            let gone = self.gone();
            if gone.is_some() || Instant::now() >= until {
                return gone;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Servers {
    /// Starts one virtiofsd per share and waits until each listens. With `verbose` their
    /// messages go to stderr, otherwise to a log that is quoted if one fails to start.
    pub fn start(virtiofsd: &Path, shares: &[Share], verbose: bool) -> anyhow::Result<Servers> {
        let dir = tempfile::Builder::new()
            .prefix("domboot-fs-")
            .tempdir()
            .context("cannot create a temporary folder for virtiofsd's sockets")?;
        let servers = Servers {
            servers: ServerWatch::default(),
            _dir: dir,
        };
        for (i, share) in shares.iter().enumerate() {
            let socket = servers._dir.path().join(format!("fs{i}.sock"));
            let log = servers._dir.path().join(format!("fs{i}.log"));
            let mut cmd = command(virtiofsd, share, &socket);
            let stderr = if verbose {
                Stdio::inherit()
            } else {
                std::fs::File::create(&log)
                    .with_context(|| format!("cannot create {}", log.display()))?
                    .into()
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
            if verbose {
                eprintln!("domboot: running {cmd:?}");
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", virtiofsd.display()))?;
            servers.servers.lock().push(Server {
                child,
                tag: share.tag.clone(),
                path: share.path.clone(),
                socket,
                log,
            });
        }
        servers.wait_for_sockets(shares)?;
        Ok(servers)
    }

    /// (tag, socket) of each server, for QEMU's -chardev/-device.
    pub fn devices(&self) -> Vec<(String, PathBuf)> {
        self.servers
            .lock()
            .iter()
            .map(|s| (s.tag.clone(), s.socket.clone()))
            .collect()
    }

    /// Watches the servers while the VM runs.
    pub fn watch(&self) -> ServerWatch {
        self.servers.clone()
    }

    fn wait_for_sockets(&self, shares: &[Share]) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let mut all = true;
            for (s, share) in self.servers.lock().iter_mut().zip(shares) {
                if s.socket.exists() {
                    continue;
                }
                all = false;
                if let Some(status) = s.child.try_wait().context("cannot wait for virtiofsd")? {
                    bail!(
                        "virtiofsd for {} ended at once ({status}){}",
                        share.path.display(),
                        log_tail(&s.log)
                    );
                }
            }
            if all {
                return Ok(());
            }
            if started.elapsed() >= START_TIMEOUT {
                bail!(
                    "virtiofsd did not create its socket within {} s{}",
                    START_TIMEOUT.as_secs(),
                    self.servers
                        .lock()
                        .first()
                        .map(|s| log_tail(&s.log))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // Each ends by itself when QEMU disconnects; this covers errors, timeouts and
        // signals, where QEMU may still have been starting.
        for s in self.servers.lock().iter_mut() {
            if let Ok(None) = s.child.try_wait() {
                let _ = s.child.kill();
            }
            let _ = s.child.wait();
        }
    }
}

/// The virtiofsd command line for one share.
///
/// `--sandbox none`: the namespace sandbox needs root or unprivileged user namespaces,
/// and what it would guard is the shared folder's edge; sharing / has none, and the
/// folders run with the calling user's own rights either way. Submounts are not
/// announced, so the host's mounts below / appear as plain folders, which the guest's
/// overlay needs (it does not cross mounts in its lower layer). The read-only shares
/// cache everything (the host's / rarely changes under a throwaway VM); --rwdir shares use
/// the default `auto`, so the host and the guest see each other's changes.
fn command(virtiofsd: &Path, share: &Share, socket: &Path) -> Command {
    let mut cmd = Command::new(virtiofsd);
    crate::run::child::dies_with_domboot(&mut cmd);
    cmd.arg("--socket-path")
        .arg(socket)
        .arg("--shared-dir")
        .arg(&share.path)
        .args(["--sandbox", "none", "--no-announce-submounts"])
        .args(["--log-level", "error"])
        .args(["--cache", if share.writable { "auto" } else { "always" }]);
    if !share.writable {
        cmd.arg("--readonly");
    }
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    if unsafe { libc::geteuid() } != 0 {
        // Raising the open-file limit to virtiofsd's default needs CAP_SYS_RESOURCE.
        cmd.arg("--rlimit-nofile=0");
    }
    cmd
}
