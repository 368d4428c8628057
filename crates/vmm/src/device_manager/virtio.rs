//! Virtio-mmio slots: which device of a [`VmConfig`] goes where ([`layout`]: its
//! registers and interrupt), how the guest learns it (the DSDT, or [`cmdline_words`]), the
//! ioeventfds and irqfd that connect it to KVM, and the thread that serves its queues.

use crate::builder::disk_name;
use crate::devices::virtio::VirtioDevice;
use crate::devices::virtio::mmio::{self, MmioTransport};
use crate::{ConsoleKind, DiskConfig, FsConfig, NetConfig, VmConfig, VmmError, VsockConfig};
use kvm_ioctls::{IoEventAddress, VmFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// The first device's register window, in the MMIO gap below 4 GiB (the plan's RAM
/// stops at 3 GiB; the IOAPIC and LAPICs sit at 0xFEC00000 and above).
pub const MMIO_BASE: u64 = 0xD000_0000;
/// The interrupts the devices get, in order: the IOAPIC's pins above the ISA ones, then
/// ISA interrupts no legacy device here uses (1, 4 and 8 are taken; 12 is the i8042's
/// mouse interrupt, 9 and 3 are often assumed by guests).
pub const GSIS: [u32; 13] = [16, 17, 18, 19, 20, 21, 22, 23, 5, 6, 7, 10, 11];

/// Where one device lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub addr: u64,
    pub len: u64,
    pub gsi: u32,
}

impl Slot {
    /// The `index`th slot, if there is one.
    pub fn nth(index: usize) -> Option<Slot> {
        Some(Slot {
            addr: MMIO_BASE + index as u64 * mmio::WINDOW,
            len: mmio::WINDOW,
            gsi: *GSIS.get(index)?,
        })
    }

    /// `virtio_mmio.device=<size>@<base>:<irq>` for kernels with
    /// VIRTIO_MMIO_CMDLINE_DEVICES (the DSDT describes the device to the others), in the
    /// syntax of Linux's `vm_cmdline_set` (drivers/virtio/virtio_mmio.c): the size as
    /// `memparse` reads it (4K), the base as `%lli` (0x...), the IRQ as `%u` (the GSI: the
    /// guest's IRQ numbers are the I/O APIC's pins, see [`crate::mptable`]). No `:<id>`:
    /// the kernel numbers the devices in the order of the words.
    pub fn cmdline(&self) -> String {
        let size = if self.len % 1024 == 0 {
            format!("{}K", self.len / 1024)
        } else {
            self.len.to_string()
        };
        format!("virtio_mmio.device={size}@{:#x}:{}", self.addr, self.gsi)
    }
}

/// One virtio device a [`VmConfig`] asks for, before it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planned<'a> {
    /// The virtio console, hvc0.
    Console,
    /// The `index`th disk: vda, vdb, ...
    Disk(usize, &'a DiskConfig),
    /// The `index`th network interface: eth0, eth1, ...
    Net(usize, &'a NetConfig),
    Rng,
    Vsock(&'a VsockConfig),
    Fs(&'a FsConfig),
}

impl Planned<'_> {
    /// What it is, for messages about a device not opened yet.
    pub fn describe(&self) -> String {
        match self {
            Planned::Console => "virtio-console hvc0".into(),
            Planned::Disk(i, d) => format!("virtio-blk {} ({})", disk_name(*i), d.path.display()),
            Planned::Net(i, _) => format!("virtio-net eth{i}"),
            Planned::Rng => "virtio-rng".into(),
            Planned::Vsock(v) => format!("virtio-vsock (CID {})", v.cid),
            Planned::Fs(f) => format!("virtio-fs {}", f.tag),
        }
    }
}

/// The virtio devices `cfg` asks for, each with its slot, in slot order: the console first
/// when it is virtio (so hvc0's device sits in the first slot whatever else the guest
/// has), then the disks in order (vda, vdb, ...), the network interfaces (eth0, ...), the
/// rng, the vsock and the virtio-fs devices. The one place that decides the order: the
/// builder attaches the devices in it, the DSDT and [`cmdline_words`] describe them in it.
pub fn layout(cfg: &VmConfig) -> Result<Vec<(Planned<'_>, Slot)>, VmmError> {
    let mut devices = Vec::new();
    if cfg.console == ConsoleKind::Virtio {
        devices.push(Planned::Console);
    }
    devices.extend(
        cfg.disks
            .iter()
            .enumerate()
            .map(|(i, d)| Planned::Disk(i, d)),
    );
    devices.extend(cfg.nets.iter().enumerate().map(|(i, n)| Planned::Net(i, n)));
    if cfg.rng {
        devices.push(Planned::Rng);
    }
    devices.extend(cfg.vsock.iter().map(Planned::Vsock));
    devices.extend(cfg.filesystems.iter().map(Planned::Fs));
    devices
        .into_iter()
        .enumerate()
        .map(|(index, device)| match Slot::nth(index) {
            Some(slot) => Ok((device, slot)),
            None => Err(VmmError::Setup(format!(
                "{}: at most {} virtio devices fit this machine's interrupts",
                device.describe(),
                GSIS.len()
            ))),
        })
        .collect()
}

/// `virtio_mmio.device=...` for each virtio device of `cfg`, in slot order (see
/// [`Slot::cmdline`]): what a guest kernel built with VIRTIO_MMIO_CMDLINE_DEVICES needs on
/// its command line to find the devices without ACPI. Empty without devices.
pub fn cmdline_words(cfg: &VmConfig) -> Result<Vec<String>, VmmError> {
    Ok(layout(cfg)?
        .iter()
        .map(|(_, slot)| slot.cmdline())
        .collect())
}

/// A device, its transport and what wakes its thread.
pub struct VirtioSlot {
    pub slot: Slot,
    pub transport: Arc<MmioTransport>,
    notify: Vec<EventFd>,
}

/// Connects `device` to the VM at `slot`: an irqfd for its interrupt, an ioeventfd per
/// queue on QueueNotify (matching the queue index, so a notification never exits to
/// domboot).
pub fn attach(
    vm: &VmFd,
    mem: &Arc<GuestMemoryMmap>,
    device: Box<dyn VirtioDevice>,
    slot: Slot,
) -> Result<VirtioSlot, VmmError> {
    let name = device.name();
    let io = |what: &str, error| VmmError::Io {
        what: format!("{name}: {what}"),
        error,
    };
    let irq = EventFd::new(EFD_NONBLOCK).map_err(|e| io("interrupt eventfd", e))?;
    vm.register_irqfd(&irq, slot.gsi)
        .map_err(|error| VmmError::Ioctl {
            what: "KVM_IRQFD (virtio)",
            error,
        })?;
    let mut notify = Vec::new();
    let mut for_transport = Vec::new();
    for index in 0..device.queue_max_sizes().len() {
        let evt = EventFd::new(EFD_NONBLOCK).map_err(|e| io("queue eventfd", e))?;
        vm.register_ioevent(
            &evt,
            &IoEventAddress::Mmio(slot.addr + mmio::QUEUE_NOTIFY),
            index as u32,
        )
        .map_err(|error| VmmError::Ioctl {
            what: "KVM_IOEVENTFD (virtio queue notify)",
            error,
        })?;
        for_transport.push(evt.try_clone().map_err(|e| io("queue eventfd", e))?);
        notify.push(evt);
    }
    let transport = MmioTransport::new(device, irq, for_transport, mem.clone())
        .map_err(|e| VmmError::Setup(e.to_string()))?;
    Ok(VirtioSlot {
        slot,
        transport: Arc::new(transport),
        notify,
    })
}

/// How long the device threads get to stop once the run has ended.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The threads serving the devices' queues, one per device.
pub struct Workers {
    stop: EventFd,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn start(slots: &[VirtioSlot]) -> Result<Workers, VmmError> {
        let io = |what: String, error| VmmError::Io { what, error };
        let stop = EventFd::new(EFD_NONBLOCK).map_err(|e| io("stop eventfd".into(), e))?;
        let mut workers = Workers {
            stop,
            handles: Vec::new(),
        };
        for s in slots {
            let name = s.transport.name().to_owned();
            let epoll = Epoll::new().map_err(|e| io(format!("{name}: epoll"), e))?;
            let stop_token = s.notify.len() as u64;
            let watch = |fd, token| {
                epoll.ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
            };
            // A vhost-user backend reads the kicks itself.
            let kicks = if s.transport.queues_served_elsewhere() {
                &[][..]
            } else {
                &s.notify[..]
            };
            for (i, evt) in kicks.iter().enumerate() {
                watch(std::os::fd::AsRawFd::as_raw_fd(evt), i as u64)
                    .map_err(|e| io(format!("{name}: epoll"), e))?;
            }
            watch(std::os::fd::AsRawFd::as_raw_fd(&workers.stop), stop_token)
                .map_err(|e| io(format!("{name}: epoll"), e))?;
            if let Some(fd) = s.transport.backend_fd() {
                // Edge-triggered: the device drains its backend until it would block or
                // the guest has no buffers left; the guest's next buffers (a queue
                // notification) resume the draining.
                epoll
                    .ctl(
                        ControlOperation::Add,
                        fd,
                        EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, stop_token + 1),
                    )
                    .map_err(|e| io(format!("{name}: epoll"), e))?;
            }
            let notify = s
                .notify
                .iter()
                .map(EventFd::try_clone)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io(format!("{name}: queue eventfd"), e))?;
            let transport = s.transport.clone();
            let handle = std::thread::Builder::new()
                .name(format!("virtio{}", workers.handles.len()))
                .spawn(move || serve(&epoll, &notify, &transport, stop_token))
                .map_err(|e| io(format!("{name}: starting its thread"), e))?;
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    /// Stops and joins the threads. One still busy after [`STOP_GRACE`] (blocked on its
    /// backend: a socket whose peer stopped reading) is named and left behind, so that
    /// `--timeout` and stop signals end the run whatever a backend does.
    pub fn stop(self) {
        let _ = self.stop.write(1);
        let left = crate::threads::join_within(self.handles, STOP_GRACE, |_| {});
        if !left.is_empty() {
            eprintln!(
                "domboot-vmm: device thread(s) {} did not stop within {} s (blocked on the \
                 host side?); leaving them",
                left.join(", "),
                STOP_GRACE.as_secs()
            );
        }
    }
}

fn serve(epoll: &Epoll, notify: &[EventFd], transport: &MmioTransport, stop_token: u64) {
    let mut events = vec![EpollEvent::default(); notify.len() + 2];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!(
                    "domboot-vmm: {}: waiting for its queues: {e}",
                    transport.name()
                );
                return;
            }
        };
        for ev in &events[..n] {
            let token = ev.data();
            if token == stop_token {
                return;
            }
            if token == stop_token + 1 {
                transport.process_backend();
                continue;
            }
            if let Some(evt) = notify.get(token as usize) {
                // Reset the counter before serving, so a notification that arrives while
                // the queue is served wakes us again.
                let _ = evt.read();
                transport.process(token as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetBackendConfig;
    use std::path::PathBuf;

    fn disk(path: &str) -> DiskConfig {
        DiskConfig {
            path: PathBuf::from(path),
            read_only: false,
        }
    }

    fn user_net() -> NetConfig {
        NetConfig {
            backend: NetBackendConfig::User,
            mac: None,
        }
    }

    #[test]
    fn no_devices_no_words() {
        assert!(cmdline_words(&VmConfig::default()).unwrap().is_empty());
    }

    /// The console first, then the disks, the interfaces and the rng, one 4 KiB window
    /// after the other from 0xd0000000, with the interrupts 16, 17, ...
    #[test]
    fn words_follow_the_slot_order() {
        let cfg = VmConfig {
            console: ConsoleKind::Virtio,
            disks: vec![disk("a.img"), disk("b.img")],
            nets: vec![user_net()],
            rng: true,
            ..Default::default()
        };
        let kinds: Vec<String> = layout(&cfg)
            .unwrap()
            .iter()
            .map(|(d, _)| d.describe())
            .collect();
        assert_eq!(
            kinds,
            [
                "virtio-console hvc0",
                "virtio-blk vda (a.img)",
                "virtio-blk vdb (b.img)",
                "virtio-net eth0",
                "virtio-rng"
            ]
        );
        assert_eq!(
            cmdline_words(&cfg).unwrap(),
            [
                "virtio_mmio.device=4K@0xd0000000:16",
                "virtio_mmio.device=4K@0xd0001000:17",
                "virtio_mmio.device=4K@0xd0002000:18",
                "virtio_mmio.device=4K@0xd0003000:19",
                "virtio_mmio.device=4K@0xd0004000:20",
            ]
        );
    }

    /// Without a virtio console the first disk takes the first slot; the vsock and the
    /// virtio-fs devices come after the rng.
    #[test]
    fn serial_console_leaves_the_first_slot_to_the_disks() {
        let cfg = VmConfig {
            disks: vec![disk("a.img")],
            rng: true,
            vsock: Some(VsockConfig {
                cid: 3,
                socket: "v.sock".into(),
            }),
            filesystems: vec![FsConfig {
                tag: "root".into(),
                socket: "fs.sock".into(),
            }],
            ..Default::default()
        };
        let l = layout(&cfg).unwrap();
        assert!(matches!(l[0].0, Planned::Disk(0, _)));
        assert_eq!(l[1].0, Planned::Rng);
        assert!(matches!(l[2].0, Planned::Vsock(_)));
        assert!(matches!(l[3].0, Planned::Fs(_)));
        assert_eq!(
            l.iter().map(|(_, s)| s.cmdline()).collect::<Vec<_>>(),
            cmdline_words(&cfg).unwrap()
        );
        assert_eq!(l[3].1.cmdline(), "virtio_mmio.device=4K@0xd0003000:19");
    }

    /// After the I/O APIC's pins 16-23 come the free ISA interrupts; a device past the last
    /// one is refused, by name.
    #[test]
    fn thirteen_devices_fit_and_the_interrupts_go_on_below_16() {
        let mut cfg = VmConfig {
            disks: (0..GSIS.len()).map(|i| disk(&format!("{i}.img"))).collect(),
            ..Default::default()
        };
        let words = cmdline_words(&cfg).unwrap();
        assert_eq!(words.len(), 13);
        assert_eq!(words[7], "virtio_mmio.device=4K@0xd0007000:23");
        assert_eq!(words[8], "virtio_mmio.device=4K@0xd0008000:5");
        assert_eq!(words[12], "virtio_mmio.device=4K@0xd000c000:11");
        cfg.rng = true;
        let err = cmdline_words(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("virtio-rng: at most 13 virtio devices"),
            "{err}"
        );
    }

    /// A window whose size is no multiple of 1 KiB is written in bytes (memparse reads
    /// both).
    #[test]
    fn sizes_as_memparse_reads_them() {
        let slot = Slot {
            addr: 0xd000_0000,
            len: 0x200,
            gsi: 5,
        };
        assert_eq!(slot.cmdline(), "virtio_mmio.device=512@0xd0000000:5");
    }
}
