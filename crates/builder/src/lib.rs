//! The domain builder: turns a kernel image, initrds, a command line and a memory size into
//! a [`BootPlan`]. Pure: it reads its inputs and computes, nothing more — no KVM, no device
//! code — so the same plan feeds every backend (the shape of Xen's redesigned builder).
//!
//! ```no_run
//! use domboot_builder::{BuildOptions, DomainImage};
//! let image = DomainImage::new(
//!     "bzImage".as_ref(),
//!     &["initrd.cpio".into()],
//!     Some("console=ttyS0"),
//!     BuildOptions::default(),
//! )?;
//! let plan = image.build()?;
//! println!("{} segments, entry {:#x}", plan.segments.len(), plan.entry.rip);
//! # Ok::<(), domboot_builder::BuildError>(())
//! ```

mod error;
mod image;
pub mod layout;
pub mod memory;
pub mod payload;
pub mod plan;
pub mod x86_64;

pub use error::BuildError;
pub use image::{BuildOptions, DomainImage, Initrd, ProtocolChoice};
pub use plan::{
    BootPlan, BootProtocol, CpuMode, E820Entry, E820Type, EntryState, FileBacking, PatchPoints,
    Reservation, Segment, SegmentRegister,
};
