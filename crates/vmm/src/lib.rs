//! The KVM backend: runs a [`BootPlan`] on `/dev/kvm`.
//!
//! ```no_run
//! use domboot_vmm::{run, SerialSink, VmConfig};
//! # let plan: domboot_builder::BootPlan = unimplemented!();
//! let cfg = VmConfig { cpus: 2, serial: SerialSink::Stdout, ..Default::default() };
//! let outcome = run(&plan, &cfg)?;
//! eprintln!("{}", outcome.describe());
//! std::process::exit(outcome.exit_code().into());
//! # Ok::<(), domboot_vmm::VmmError>(())
//! ```
//!
//! One VM per call: in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT, guest RAM from the
//! plan's e820, the plan's segments copied in, an MP table and ACPI tables for the vCPUs
//! and devices (see [`acpi`]: the guest can power off through them), the legacy PC
//! devices and virtio-mmio disks, network interfaces, rng, vsock and virtio-fs (see
//! [`device_manager`]). vCPU 0 starts in the
//! plan's entry state; the others wait for INIT/SIPI. The run ends with an [`Outcome`];
//! see [`Outcome::exit_code`] for the process exit status each one maps to.
//!
//! Where things are: [`builder`] makes a [`vm::Vm`] from the plan (memory, KVM, devices,
//! tables, vCPUs); [`vm`] runs it; [`vcpu_thread`] is one vCPU's exit loop;
//! [`device_manager`] puts devices on the port and MMIO [`bus`]es; [`devices`] holds each
//! device's own model, [`devices::virtio`] the virtio ones; [`vhost_user`] serves those
//! devices to QEMU when the CLI runs a guest under TCG.

pub mod acpi;
pub mod builder;
pub mod bus;
mod console_in;
pub mod device_manager;
pub mod devices;
pub mod exit;
mod irqchip;
pub mod kvm;
pub mod memory;
pub mod mptable;
mod outcome;
pub mod reset_vector;
pub mod signals;
pub mod terminal;
mod threads;
pub mod vcpu;
mod vcpu_thread;
pub mod vhost_user;
pub mod vm;

pub use device_manager::virtio::cmdline_words as virtio_mmio_cmdline;
pub use devices::serial::SerialSink;
pub use exit::{CrashReport, Registers};
pub use kvm::{KvmStatus, kvm_status};
pub use outcome::{EXIT_BACKEND_GONE, EXIT_CRASH, EXIT_GUEST_PANIC, EXIT_TIMEOUT, Outcome};

use domboot_builder::BootPlan;
use std::path::PathBuf;
use std::time::Duration;

/// How to run the VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// vCPUs, 1 to [`mptable::MAX_CPUS`].
    pub cpus: u8,
    pub serial: SerialSink,
    /// End a guest that is still running after this long.
    pub timeout: Option<Duration>,
    /// Log set-up steps and unhandled device accesses to stderr.
    pub verbose: bool,
    /// ACPI tables (RSDP, XSDT, FADT, MADT, DSDT) and the ACPI sleep registers, through
    /// which the guest powers off (see [`acpi`]). On by default; off, the guest has only
    /// the MP table and can reset but not power off, and finds virtio devices only through
    /// the `virtio_mmio.device=` words of [`virtio_mmio_cmdline`] on its command line (the
    /// plan's command line must have them: the builder checks).
    pub acpi: bool,
    /// virtio-blk disks, in order: the first is the guest's vda.
    pub disks: Vec<DiskConfig>,
    /// A virtio-rng device fed from the host's /dev/urandom.
    pub rng: bool,
    /// virtio-net interfaces, in order: the first is the guest's eth0.
    pub nets: Vec<NetConfig>,
    /// Where the host's console input goes, and whether the guest has a virtio console.
    pub console: ConsoleKind,
    /// A virtio-vsock device on Firecracker's hybrid vsock (see
    /// [`devices::virtio::vsock`]).
    pub vsock: Option<VsockConfig>,
    /// Unix sockets (listened on by the caller) that COM2, COM3 and COM4 connect to, in
    /// that order: at most three (see [`devices::serial_link`]). Without, those ports are
    /// absent.
    pub serial_links: Vec<PathBuf>,
    /// virtio-fs devices, each served by a vhost-user-fs backend (virtiofsd) already
    /// listening on its socket (see [`devices::virtio::fs`]). With any, guest RAM is
    /// shareable memfds.
    pub filesystems: Vec<FsConfig>,
}

/// One virtio-fs device: the tag the guest mounts and the backend's vhost-user socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsConfig {
    pub tag: String,
    pub socket: PathBuf,
}

/// The guest's console device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsoleKind {
    /// COM1 (ttyS0) takes the host's input; its output goes to the sink.
    #[default]
    Serial,
    /// A virtio console (hvc0) takes the host's input; both its output and COM1's go to
    /// the sink (boot with `console=hvc0`).
    Virtio,
}

/// The vsock device: the guest's CID and the Unix socket its host side listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockConfig {
    /// 3 or more (see [`devices::virtio::vsock::valid_guest_cid`]).
    pub cid: u64,
    /// Host programs connect here (`CONNECT <port>\n`); the guest's connections to host
    /// port P go to `<socket>_<P>`. It must not exist; it is removed when the VM ends.
    pub socket: PathBuf,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub backend: NetBackendConfig,
    /// The guest's MAC address; a random one in 52:54:00:xx:xx:xx when `None`.
    pub mac: Option<[u8; 6]>,
}

/// Where an interface's frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackendConfig {
    /// The host's tap device `name` (created, and brought up, when absent), added to the
    /// host bridge `bridge` when one is named (a Xen `vif` or libvirt `<interface
    /// type='bridge'>`).
    Tap {
        name: String,
        bridge: Option<String>,
    },
    /// passt's user-mode network: no root, the guest reaches what the host reaches.
    User,
}

/// One disk: a raw image file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    /// The guest cannot write it (and domboot opens it read-only).
    pub read_only: bool,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            cpus: 1,
            serial: SerialSink::Stdout,
            timeout: None,
            verbose: false,
            acpi: true,
            disks: Vec::new(),
            rng: false,
            nets: Vec::new(),
            console: ConsoleKind::Serial,
            vsock: None,
            serial_links: Vec::new(),
            filesystems: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("{}", .0.advice())]
    Kvm(KvmStatus),
    #[error("{what} failed: {error}")]
    Ioctl {
        what: &'static str,
        error: kvm_ioctls::Error,
    },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("the plan does not fit this VM: {0}")]
    Layout(String),
    #[error("VM set-up: {0}")]
    Setup(String),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |error| VmmError::Ioctl { what, error }
}

impl From<std::io::Error> for VmmError {
    fn from(error: std::io::Error) -> Self {
        VmmError::Io {
            what: "signal handling".into(),
            error,
        }
    }
}

/// Runs `plan` until the guest ends it, it crashes, the timeout passes or a stop signal
/// arrives.
pub fn run(plan: &BootPlan, cfg: &VmConfig) -> Result<Outcome, VmmError> {
    builder::build(plan, cfg)?.run()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use domboot_builder::{
        BootProtocol, CpuMode, EntryState, PatchPoints, SegmentRegister, memory::MemoryMap,
    };
    use std::time::Duration;

    pub fn empty_plan() -> BootPlan {
        let seg = SegmentRegister {
            selector: 0,
            base: 0,
            limit: 0,
            type_: 0,
            dpl: 0,
            present: false,
            s: false,
            db: false,
            l: false,
            g: false,
        };
        BootPlan {
            protocol: BootProtocol::Linux32,
            memory_size: 64 << 20,
            e820: MemoryMap::new(64 << 20).unwrap().e820,
            segments: vec![],
            reservations: vec![],
            entry: EntryState {
                mode: CpuMode::Protected32,
                rip: 0,
                rsp: 0,
                rax: 0,
                rbx: 0,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                rbp: 0,
                rflags: 2,
                cr0: 0x11,
                cr3: 0,
                cr4: 0,
                efer: 0,
                cs: seg,
                ds: seg,
                gdt_base: 0,
                gdt_limit: 0,
            },
            patch_points: PatchPoints::default(),
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::PowerOff.exit_code(), 0);
        assert_eq!(Outcome::Reset.exit_code(), 0);
        assert_eq!(Outcome::DebugExit(0x10).exit_code(), 0x10);
        assert_eq!(Outcome::Timeout(Duration::from_secs(1)).exit_code(), 124);
        assert_eq!(Outcome::Interrupted(libc::SIGINT).exit_code(), 130);
        assert_eq!(Outcome::Interrupted(libc::SIGTERM).exit_code(), 143);
        let crash = Outcome::Crash(Box::new(CrashReport {
            vcpu: 0,
            reason: "x".into(),
            registers: None,
            code: None,
        }));
        assert_eq!(crash.exit_code(), 125);
        assert!(crash.describe().contains("crashed"));
    }

    #[test]
    fn bad_cpu_counts_are_refused_before_kvm() {
        let plan = empty_plan();
        for cpus in [0, 255] {
            let cfg = VmConfig {
                cpus,
                serial: SerialSink::None,
                ..Default::default()
            };
            assert!(matches!(run(&plan, &cfg), Err(VmmError::Setup(_))));
        }
    }
}
