//! domboot's own virtio devices served over vhost-user, for QEMU to attach with its
//! `vhost-user-*-pci` devices under TCG: the guest then gets the very device the KVM
//! backend gives it (the vsock's hybrid sockets, its half-close, its ports), not a
//! look-alike from another program.
//!
//! [`backend::DeviceBackend`] adapts a [`crate::devices::virtio::VirtioDevice`] to the
//! rust-vmm vhost-user-backend crate's daemon; [`server::Server`] runs that daemon on a
//! listening socket, on threads of domboot's own process. QEMU's guest RAM must be
//! shareable (a memfd with `share=on`): the daemon maps what QEMU sends it.
//!
//! A guest handing the device garbage breaks the device (logged once; it serves nothing
//! until the guest resets it), never domboot.

pub mod backend;
pub mod server;

pub use server::{Server, ServerError};

#[cfg(test)]
mod tests;
