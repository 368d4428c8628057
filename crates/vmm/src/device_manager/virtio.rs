//! Virtio-mmio slots: where each virtio device's registers and interrupt go, the
//! ioeventfds and irqfd that connect it to KVM, and the thread that serves its queues.

use crate::VmmError;
use crate::devices::virtio::VirtioDevice;
use crate::devices::virtio::mmio::{self, MmioTransport};
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

    /// `virtio_mmio.device=` for kernels with VIRTIO_MMIO_CMDLINE_DEVICES (the DSDT
    /// describes the device to the others).
    pub fn cmdline(&self) -> String {
        format!("virtio_mmio.device=4K@{:#x}:{}", self.addr, self.gsi)
    }
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
