//! Each device's own model, independent of how it is wired into the VM (that is
//! [`crate::device_manager`]'s job): the legacy PC devices, and the virtio devices in
//! [`virtio`].

pub mod acpi_sleep;
pub mod cmos;
pub mod debug_exit;
pub mod i8042;
pub mod panic_watch;
pub mod pci_host;
pub mod serial;
pub mod serial_link;
pub mod virtio;

pub use crate::device_manager::legacy::{POST_PORT, RESET_CONTROL_PORT};
