//! The domain builder: turns a kernel image, initrds, a command line and a memory size into
//! a [`BootPlan`]. Pure: it reads its inputs and computes, nothing more — no KVM, no device
//! code — so the same plan feeds every backend (the shape of Xen's redesigned builder).

pub mod plan;

pub use plan::{
    BootPlan, BootProtocol, CpuMode, E820Entry, E820Type, EntryState, PatchPoints, Reservation,
    Segment, SegmentRegister,
};
