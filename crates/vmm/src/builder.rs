//! Builds a [`Vm`] from a [`BootPlan`]: guest memory with the plan's segments, the KVM VM
//! with its in-kernel irqchip and PIT, the device manager with the legacy devices and
//! the configured virtio devices, the firmware tables (MP table, ACPI) that describe them,
//! and the vCPUs, vCPU 0 in the plan's entry state.
//!
//! The order matters in two places, each said where it happens: memory slots before the
//! irqchip, and the virtio devices before the ACPI tables that describe them. Which
//! virtio device goes in which slot is [`virtio::layout`]'s to say.

use crate::device_manager::virtio::{self, Planned};
use crate::device_manager::{DeviceManager, legacy};
use crate::devices::virtio::console::{Console, ConsoleInput};
use crate::devices::virtio::fs::Fs;
use crate::devices::virtio::net::{self, Net, NetBackend, passt::Passt, tap::Tap};
use crate::devices::virtio::vsock::{self, Vsock};
use crate::devices::virtio::{VirtioDevice, block::Block, rng::Rng};
use crate::devices::{i8042, panic_watch, serial};
use crate::vm::Vm;
use crate::{
    NetBackendConfig, SerialSink, VmConfig, VmmError, acpi, ioctl, irqchip, kvm, memory, mptable,
};
use crate::{reset_vector, vcpu};
use domboot_builder::BootPlan;
use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Cap, VcpuFd, VmFd};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// Builds the VM `cfg` describes for `plan`, ready to run.
pub fn build(plan: &BootPlan, cfg: &VmConfig) -> Result<Vm, VmmError> {
    if cfg.cpus == 0 || cfg.cpus > mptable::MAX_CPUS {
        return Err(VmmError::Setup(format!(
            "--cpus must be 1 to {}, not {}",
            mptable::MAX_CPUS,
            cfg.cpus
        )));
    }
    let log = |s: &str| {
        if cfg.verbose {
            eprintln!("domboot-vmm: {s}");
        }
    };
    // Where each virtio device goes, and whether the guest can find it there, before
    // anything is opened.
    let layout = virtio::layout(cfg)?;
    check_slots(plan, cfg, &layout)?;
    let (kvm, pvm) = kvm::open()?;
    if pvm {
        log("/dev/kvm is PVM (kvm_pvm): only PVM-aware kernels and freestanding guests run");
    }
    let max = kvm.get_max_vcpus();
    if usize::from(cfg.cpus) > max {
        return Err(VmmError::Setup(format!(
            "KVM allows at most {max} vCPUs, {} asked for",
            cfg.cpus
        )));
    }
    // Memory is made before the VM so that it is also dropped after it, on every path.
    // A vhost-user backend maps guest RAM too: it is then memfds, shared.
    let mem = Arc::new(if cfg.filesystems.is_empty() {
        memory::allocate(plan)?
    } else {
        memory::allocate_shared(plan)?
    });
    let loaded = memory::load_segments(&mem, plan)?;
    log(&format!(
        "segments: {} KiB copied, {} KiB mapped copy-on-write from their files",
        loaded.copied >> 10,
        loaded.mapped >> 10
    ));
    let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
    // Memory slots go in before the irqchip: on this kernel (PVM host) the first slot added
    // after KVM_CREATE_IRQCHIP costs 3-8 ms (measured with strace -T), the same slot added
    // before it ~0.1 ms — most of domboot's start-up.
    memory::register(&vm, &mem)?;
    if kvm.check_extension(Cap::SetIdentityMapAddr) {
        vm.set_identity_map_address(vcpu::KVM_IDENTITY_MAP_ADDR)
            .map_err(ioctl("KVM_SET_IDENTITY_MAP_ADDR"))?;
    }
    if kvm.check_extension(Cap::SetTssAddr) {
        vm.set_tss_address(vcpu::KVM_TSS_ADDR as usize)
            .map_err(ioctl("KVM_SET_TSS_ADDR"))?;
    }
    vm.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
    irqchip::mask_8259s(&vm)?;
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(ioctl("KVM_CREATE_PIT2"))?;

    let watch = panic_watch::PanicWatch::default();
    let sink = open_sink(cfg)?;
    let mut devices = legacy_devices(&vm, cfg, &watch, &sink)?;
    devices.link_serial_ports(&vm, &cfg.serial_links)?;
    add_virtio_devices(&mut devices, &vm, &mem, cfg, &layout, &sink, &watch)?;

    let template = vcpu::supported_cpuid(&kvm)?;
    let signature = template
        .as_slice()
        .iter()
        .find(|e| e.function == 1)
        .map_or(0, |e| e.eax);
    write_mptable(&mem, plan, cfg.cpus, signature)?;
    reset_vector::install(&mem, plan)?;
    if cfg.acpi {
        // After the devices: the DSDT describes the virtio devices the guest has.
        let tables = acpi::install(
            &mem,
            plan,
            cfg.cpus,
            &devices.virtio_slots(),
            devices.links.len(),
        )?;
        log(&format!(
            "ACPI: RSDP at {:#x}, tables {}",
            tables.rsdp_addr(),
            tables
                .tables
                .iter()
                .map(|t| format!("{} {:#x}+{}", t.name, t.addr, t.bytes.len()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    log(&format!(
        "memory {}, {} segment(s), {} vCPU(s), {} virtio device(s)",
        memory::ram_ranges(plan)?
            .iter()
            .map(|(s, e)| format!("{s:#x}-{e:#x}"))
            .collect::<Vec<_>>()
            .join(" "),
        plan.segments.len(),
        cfg.cpus,
        devices.virtio.len()
    ));

    let mut vcpus = Vec::with_capacity(cfg.cpus.into());
    for i in 0..cfg.cpus {
        vcpus.push(create_vcpu(&vm, &template, i, cfg.cpus, plan)?);
    }
    Ok(Vm::new(vm, mem, devices, vcpus, watch, cfg.clone()))
}

/// The console's sink, opened once (a file is created once) and shared by COM1 and the
/// virtio console.
fn open_sink(cfg: &VmConfig) -> Result<serial::SharedSink, VmmError> {
    let writer = serial::SinkWriter::open(&cfg.serial).map_err(|error| VmmError::Io {
        what: match &cfg.serial {
            SerialSink::File(p) => format!("serial output file {}", p.display()),
            _ => "serial output".into(),
        },
        error,
    })?;
    Ok(serial::SharedSink::new(writer))
}

/// COM1 (its output passing the panic watcher on the way to the sink), the i8042, the
/// RTC, the PCI host bridge, the debug-exit port and the ACPI sleep registers.
fn legacy_devices(
    vm: &VmFd,
    cfg: &VmConfig,
    watch: &panic_watch::PanicWatch,
    sink: &serial::SharedSink,
) -> Result<DeviceManager, VmmError> {
    let irq = EventFd::new(EFD_NONBLOCK).map_err(|error| VmmError::Io {
        what: "eventfd for the COM1 interrupt".into(),
        error,
    })?;
    vm.register_irqfd(&irq, serial::COM1_IRQ)
        .map_err(ioctl("KVM_IRQFD"))?;
    let writer = panic_watch::Watched {
        inner: sink.clone(),
        watch: watch.clone(),
    };
    let uart = vm_superio::Serial::new(serial::IrqTrigger(irq), writer);
    let kbd_irq = EventFd::new(EFD_NONBLOCK).map_err(|error| VmmError::Io {
        what: "eventfd for the i8042 interrupt".into(),
        error,
    })?;
    vm.register_irqfd(&kbd_irq, i8042::KBD_IRQ)
        .map_err(ioctl("KVM_IRQFD"))?;
    let serial = Arc::new(legacy::SerialPort {
        uart: Mutex::new(uart),
        lost: AtomicU64::new(0),
    });
    DeviceManager::new(serial, kbd_irq, cfg.acpi, cfg.verbose)
}

/// Checks each virtio device's slot: that the guest can find the device there (through
/// the DSDT with ACPI; without ACPI only through its `virtio_mmio.device=` word on the
/// plan's command line, see [`virtio::cmdline_words`]) and that the plan's RAM leaves its
/// window free.
fn check_slots(
    plan: &BootPlan,
    cfg: &VmConfig,
    layout: &[(Planned, virtio::Slot)],
) -> Result<(), VmmError> {
    if layout.is_empty() {
        return Ok(());
    }
    let ram = memory::ram_ranges(plan)?;
    let cmdline = plan_cmdline(plan);
    for (device, slot) in layout {
        let name = device.describe();
        let word = slot.cmdline();
        if !cfg.acpi && !cmdline.split_whitespace().any(|w| w == word) {
            return Err(VmmError::Setup(format!(
                "{name}: without ACPI the guest finds a virtio-mmio device only through \
                 `{word}` on its command line (a kernel built with \
                 VIRTIO_MMIO_CMDLINE_DEVICES), and the command line lacks it"
            )));
        }
        if let Some((start, end)) = ram
            .iter()
            .find(|&&(s, e)| s < slot.addr + slot.len && slot.addr < e)
        {
            return Err(VmmError::Layout(format!(
                "{name}: the plan's RAM {start:#x}-{end:#x} covers its virtio-mmio window at {:#x}",
                slot.addr
            )));
        }
    }
    Ok(())
}

/// The command line the plan hands the kernel: its "cmdline" segment up to the NUL (empty
/// when it has none).
fn plan_cmdline(plan: &BootPlan) -> String {
    plan.segments
        .iter()
        .find(|s| s.name == "cmdline")
        .map(|s| {
            let bytes = s.data.split(|&b| b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(bytes).into_owned()
        })
        .unwrap_or_default()
}

/// Opens each virtio device of `layout` and attaches it at its slot (the console's output
/// goes to `sink` past the panic watcher, as COM1's does).
fn add_virtio_devices(
    devices: &mut DeviceManager,
    vm: &VmFd,
    mem: &Arc<GuestMemoryMmap>,
    cfg: &VmConfig,
    layout: &[(Planned, virtio::Slot)],
    sink: &serial::SharedSink,
    watch: &panic_watch::PanicWatch,
) -> Result<(), VmmError> {
    for (planned, slot) in layout {
        let device = open_virtio(planned, devices, sink, watch)?;
        let name = device.name();
        devices.add_virtio(vm, mem, device, *slot)?;
        if cfg.verbose {
            eprintln!(
                "domboot-vmm: {name} at {:#x}, interrupt {}",
                slot.addr, slot.gsi
            );
        }
    }
    Ok(())
}

/// The device `planned` describes, with its host side open.
fn open_virtio(
    planned: &Planned,
    devices: &mut DeviceManager,
    sink: &serial::SharedSink,
    watch: &panic_watch::PanicWatch,
) -> Result<Box<dyn VirtioDevice>, VmmError> {
    Ok(match *planned {
        Planned::Console => {
            let input = ConsoleInput::new().map_err(|error| VmmError::Io {
                what: "virtio console input eventfd".into(),
                error,
            })?;
            let output = panic_watch::Watched {
                inner: sink.clone(),
                watch: watch.clone(),
            };
            devices.console_input = Some(input.clone());
            Box::new(Console::new(Box::new(output), input))
        }
        Planned::Disk(i, disk) => Box::new(
            Block::open(&disk.path, disk.read_only, &disk_name(i))
                .map_err(|e| VmmError::Setup(e.to_string()))?,
        ),
        Planned::Net(i, n) => {
            let backend: Box<dyn NetBackend> = match &n.backend {
                NetBackendConfig::Tap { name, bridge } => Box::new(
                    Tap::open_on(name, bridge.as_deref())
                        .map_err(|e| VmmError::Setup(e.to_string()))?,
                ),
                NetBackendConfig::User => {
                    Box::new(Passt::start().map_err(|e| VmmError::Setup(e.to_string()))?)
                }
            };
            let mac = n.mac.unwrap_or_else(net::random_mac);
            Box::new(Net::new(backend, mac, &format!("eth{i}")))
        }
        Planned::Rng => Box::new(Rng::new().map_err(|error| VmmError::Io {
            what: "virtio-rng: opening /dev/urandom".into(),
            error,
        })?),
        Planned::Vsock(v) => {
            if !vsock::valid_guest_cid(v.cid) {
                return Err(VmmError::Setup(format!(
                    "vsock: guest CID {} (3 to {}; 0 to 2 are reserved)",
                    v.cid,
                    u32::MAX - 1
                )));
            }
            Box::new(
                Vsock::new(v.cid, &v.socket).map_err(|e| VmmError::Setup(format!("vsock: {e}")))?,
            )
        }
        Planned::Fs(f) => Box::new(
            Fs::connect(&f.socket, &f.tag)
                .map_err(|e| VmmError::Setup(format!("virtio-fs: {e}")))?,
        ),
    })
}

/// vda, vdb, ..., vdz, vdaa, ... as Linux names them.
pub fn disk_name(index: usize) -> String {
    let mut suffix = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        suffix.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    suffix.reverse();
    format!("vd{}", String::from_utf8_lossy(&suffix))
}

pub(crate) fn write_mptable(
    mem: &GuestMemoryMmap,
    plan: &BootPlan,
    cpus: u8,
    signature: u32,
) -> Result<(), VmmError> {
    let table = mptable::build(cpus, mptable::MPTABLE_START, signature)?;
    let start = mptable::MPTABLE_START;
    let end = start + table.len() as u64;
    if let Some(seg) = plan
        .segments
        .iter()
        .find(|s| s.addr < end && s.end() > start)
    {
        return Err(VmmError::Layout(format!(
            "segment {} at {:#x}-{:#x} overlaps the MP table at {start:#x}-{end:#x}",
            seg.name,
            seg.addr,
            seg.end()
        )));
    }
    mem.write_slice(&table, GuestAddress(start))
        .map_err(|e| VmmError::Memory(format!("writing the MP table: {e}")))
}

fn create_vcpu(
    vm: &VmFd,
    template: &kvm_bindings::CpuId,
    index: u8,
    count: u8,
    plan: &BootPlan,
) -> Result<VcpuFd, VmmError> {
    let fd = vm
        .create_vcpu(index.into())
        .map_err(ioctl("KVM_CREATE_VCPU"))?;
    let cpuid = vcpu::cpuid_for(template, index.into(), count.into());
    fd.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
    vcpu::set_msrs(&fd)?;
    vcpu::set_fpu(&fd)?;
    vcpu::set_lint(&fd)?;
    if index == 0 {
        vcpu::set_entry_state(&fd, &plan.entry)?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_follow_linux() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 701, 702].map(disk_name).into();
        assert_eq!(
            names,
            ["vda", "vdb", "vdz", "vdaa", "vdab", "vdzz", "vdaaa"]
        );
    }

    /// Without ACPI each virtio device's `virtio_mmio.device=` word must be on the plan's
    /// command line; with ACPI the DSDT announces it.
    #[test]
    fn without_acpi_the_command_line_must_announce_each_device() {
        let cfg = VmConfig {
            acpi: false,
            disks: vec![crate::DiskConfig {
                path: "a.img".into(),
                read_only: false,
            }],
            rng: true,
            ..Default::default()
        };
        let layout = virtio::layout(&cfg).unwrap();
        let with_cmdline = |text: &str| {
            let mut plan = crate::tests::empty_plan();
            let mut data = text.as_bytes().to_vec();
            data.push(0);
            plan.segments.push(domboot_builder::Segment {
                name: "cmdline".into(),
                addr: 0x2_0000,
                mem_size: data.len() as u64,
                data: data.into(),
                backing: None,
            });
            plan
        };
        let err = check_slots(&crate::tests::empty_plan(), &cfg, &layout)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("virtio-blk vda (a.img)")
                && err.contains("`virtio_mmio.device=4K@0xd0000000:16`"),
            "{err}"
        );
        // Only the disk's word: the rng is the one missing.
        let plan = with_cmdline("console=ttyS0 virtio_mmio.device=4K@0xd0000000:16");
        let err = check_slots(&plan, &cfg, &layout).unwrap_err().to_string();
        assert!(err.starts_with("VM set-up: virtio-rng:"), "{err}");
        let words = virtio::cmdline_words(&cfg).unwrap().join(" ");
        let plan = with_cmdline(&format!("console=ttyS0 {words} panic=-1"));
        assert_eq!(
            plan_cmdline(&plan),
            format!("console=ttyS0 {words} panic=-1")
        );
        check_slots(&plan, &cfg, &layout).unwrap();
        let acpi = VmConfig {
            acpi: true,
            ..cfg.clone()
        };
        check_slots(&crate::tests::empty_plan(), &acpi, &layout).unwrap();
    }

    #[test]
    fn mp_table_overlap_is_an_error() {
        let mut plan = crate::tests::empty_plan();
        plan.segments.push(domboot_builder::Segment {
            name: "low".into(),
            addr: 0xF_0000,
            mem_size: 16,
            data: vec![0u8; 16].into(),
            backing: None,
        });
        let mem = memory::allocate(&plan).unwrap();
        let err = write_mptable(&mem, &plan, 1, 0).unwrap_err().to_string();
        assert!(err.contains("overlaps the MP table"), "{err}");
    }
}
