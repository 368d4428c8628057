//! The guest's vsock under TCG: the KVM backend's own vsock device
//! ([`domboot_vmm::devices::virtio::vsock`]), served to QEMU's `vhost-user-vsock-pci` over
//! vhost-user from a thread of this process ([`domboot_vmm::vhost_user`]). The guest and
//! host programs see exactly what they see on KVM: Firecracker's hybrid vsock on the
//! `--vsock` socket, half-close, `OK <host port>` with ports from 1 << 30, a RST for a
//! guest connection nothing listens for.

use super::devices::VsockArg;
use anyhow::Context as _;
use domboot_vmm::devices::virtio::vsock::Vsock;
use domboot_vmm::vhost_user::Server;
use std::path::{Path, PathBuf};

/// The vsock of one run; dropping it stops serving and removes the hybrid socket.
pub struct TcgVsock {
    /// `None` once the server has ended (and been reported).
    server: Option<Server>,
    /// The hybrid vsock's socket (`--vsock`'s SOCKET).
    socket: PathBuf,
    /// The vhost-user socket QEMU connects to.
    vhost: PathBuf,
}

impl TcgVsock {
    /// Binds the hybrid socket (refused if the path exists, as on KVM) and listens for
    /// QEMU on a vhost-user socket in `dir` (the run's private folder).
    pub fn start(vsock: &VsockArg, dir: &Path) -> anyhow::Result<TcgVsock> {
        let device =
            Vsock::new(vsock.cid, &vsock.socket).map_err(|e| anyhow::anyhow!("vsock: {e}"))?;
        let vhost = dir.join("vsock.sock");
        let server = Server::start(Box::new(device), &vhost)
            .with_context(|| format!("vsock: serving it to QEMU on {}", vhost.display()))?;
        Ok(TcgVsock {
            server: Some(server),
            socket: vsock.socket.clone(),
            vhost,
        })
    }

    /// The vhost-user socket, for QEMU's `-chardev socket,path=`.
    pub fn vhost_socket(&self) -> &Path {
        &self.vhost
    }

    /// Once, after the server has ended while QEMU runs: what happened, for a warning.
    /// The guest keeps running without a working vsock (as it would without the device);
    /// the hybrid socket is gone, so host programs find no VM there.
    pub fn gone(&mut self) -> Option<String> {
        let why = self.server.as_mut()?.gone()?;
        self.server = None;
        remove_socket(&self.socket);
        Some(format!("{why}; the guest's vsock no longer works"))
    }
}

impl Drop for TcgVsock {
    fn drop(&mut self) {
        // Stops the server; the device removes its socket when it goes.
        self.server = None;
        // A server thread left behind (stuck) still holds the device: remove it anyway.
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
