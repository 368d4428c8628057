//! The virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2): a 4 KiB register
//! window per device, announced to the guest in the DSDT as `LNRO0005` (see
//! [`crate::acpi::dsdt`]), with one interrupt raised through an irqfd and queue
//! notifications arriving on ioeventfds the device manager registers.
//!
//! Written here rather than taken from a crate: rust-vmm's `virtio-device` crate, the
//! only maintained implementation, is not published; the register file is a page of the
//! specification. The queues themselves are rust-vmm's `virtio-queue`.

use super::{DeviceError, F_EVENT_IDX, F_VERSION_1, INT_CONFIG, INT_VRING, VirtioDevice, status};
use crate::bus::{BusDevice, Flow};
use crate::device_manager::legacy::lock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Bytes of guest-physical address space each device's registers take.
pub const WINDOW: u64 = 0x1000;
/// The register a driver writes a queue index to when it has made buffers available.
pub const QUEUE_NOTIFY: u64 = 0x50;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
/// "DOMB", little-endian: the subsystem vendor the guest sees.
const VENDOR_ID: u32 = u32::from_le_bytes(*b"DOMB");
const CONFIG_SPACE: u64 = 0x100;

struct Registers {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
}

/// One device's registers, queues and interrupt.
pub struct MmioTransport {
    regs: Mutex<Registers>,
    /// InterruptStatus, outside the lock: the driver's interrupt handler reads and
    /// acknowledges it while the device's thread may hold the lock serving a request.
    interrupt_status: AtomicU32,
    irq: EventFd,
    /// One per queue; a QueueNotify write that reaches domboot (no ioeventfd) is passed on
    /// to the device's thread through it.
    notify: Vec<EventFd>,
    mem: Arc<GuestMemoryMmap>,
    name: String,
}

impl MmioTransport {
    /// `irq` raises the device's interrupt; `notify[i]` wakes the thread serving queue `i`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        irq: EventFd,
        notify: Vec<EventFd>,
        mem: Arc<GuestMemoryMmap>,
    ) -> Result<MmioTransport, DeviceError> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max))
            .collect::<Result<Vec<_>, _>>()?;
        if notify.len() != queues.len() {
            return Err(DeviceError(format!(
                "{} has {} queues but {} notifiers",
                device.name(),
                queues.len(),
                notify.len()
            )));
        }
        Ok(MmioTransport {
            name: device.name(),
            regs: Mutex::new(Registers {
                device,
                queues,
                device_features_sel: 0,
                driver_features_sel: 0,
                driver_features: 0,
                queue_sel: 0,
                status: 0,
            }),
            interrupt_status: AtomicU32::new(0),
            irq,
            notify,
            mem,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's status register (for tests and logs).
    pub fn status(&self) -> u32 {
        lock(&self.regs).status
    }

    /// The device's host-side descriptor, if it has one (see
    /// [`VirtioDevice::backend_fd`]).
    pub fn backend_fd(&self) -> Option<std::os::fd::RawFd> {
        lock(&self.regs).device.backend_fd()
    }

    /// Whether another process serves the queues (see
    /// [`VirtioDevice::queues_served_elsewhere`]).
    pub fn queues_served_elsewhere(&self) -> bool {
        lock(&self.regs).device.queues_served_elsewhere()
    }

    /// The registers, queues and device state, for a snapshot.
    pub fn state(&self) -> super::state::TransportState {
        let regs = lock(&self.regs);
        super::state::TransportState {
            device_features_sel: regs.device_features_sel,
            driver_features_sel: regs.driver_features_sel,
            driver_features: regs.driver_features,
            queue_sel: regs.queue_sel,
            status: regs.status,
            interrupt_status: self.interrupt_status.load(Ordering::SeqCst),
            queues: regs
                .queues
                .iter()
                .map(super::state::QueueSnapshot::of)
                .collect(),
            device: regs.device.state(),
        }
    }

    /// Why the device's backend is gone for good, named with the device (see
    /// [`VirtioDevice::backend_gone`]).
    pub fn backend_gone(&self) -> Option<String> {
        let why = lock(&self.regs).device.backend_gone()?;
        Some(format!("{}: {why}", self.name))
    }

    /// Serves the device's backend after it became ready, while the driver has the device
    /// running.
    pub fn process_backend(&self) {
        let mut regs = lock(&self.regs);
        let regs = &mut *regs;
        if regs.status & status::DRIVER_OK == 0 || regs.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        let result = regs.device.process_backend(&mut regs.queues, &self.mem);
        self.finish(regs, result);
    }

    /// Interrupts the driver after used buffers, or fails the device after an error.
    fn finish(&self, regs: &mut Registers, result: Result<bool, DeviceError>) {
        match result {
            Ok(false) => {}
            Ok(true) => {
                // With EVENT_IDX the driver says when it wants an interrupt (used_event);
                // without it every queue needs one. Each queue is asked, so each forgets
                // what it has added since. A vhost-user backend fills the used rings and
                // applies EVENT_IDX itself (our copies of its queues never see a used
                // buffer): its call means an interrupt is due.
                let mut needed = regs.device.queues_served_elsewhere();
                if !needed {
                    for q in &mut regs.queues {
                        needed |= q.needs_notification(self.mem.as_ref()).unwrap_or(true);
                    }
                }
                if needed {
                    self.interrupt_status.fetch_or(INT_VRING, Ordering::SeqCst);
                    let _ = self.irq.write(1);
                }
            }
            Err(e) => {
                eprintln!(
                    "domboot-vmm: {}: {e}; the device stops until the guest resets it",
                    self.name
                );
                regs.status |= status::DEVICE_NEEDS_RESET;
                self.interrupt_status.fetch_or(INT_CONFIG, Ordering::SeqCst);
                let _ = self.irq.write(1);
            }
        }
    }

    /// Serves queue `index` after a notification: only while the driver has the device
    /// running and the queue ready. A device error puts the device into NEEDS_RESET.
    pub fn process(&self, index: usize) {
        let mut regs = lock(&self.regs);
        let regs = &mut *regs;
        if regs.status & status::DRIVER_OK == 0 || regs.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        if regs.device.queues_served_elsewhere() {
            return;
        }
        let Some(queue) = regs.queues.get_mut(index) else {
            return;
        };
        if !queue.ready() {
            return;
        }
        let result = if queue.is_valid(self.mem.as_ref()) {
            regs.device.process_queue(index, queue, &self.mem)
        } else {
            Err(DeviceError::invalid_queue(index, queue))
        };
        self.finish(regs, result);
    }

    fn read_register(regs: &Registers, offset: u64) -> u32 {
        let queue = regs.queues.get(regs.queue_sel as usize);
        match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => regs.device.device_type(),
            0x00c => VENDOR_ID,
            0x010 => match regs.device_features_sel {
                0 => regs.device.features() as u32,
                1 => (regs.device.features() >> 32) as u32,
                _ => 0,
            },
            0x034 => queue.map_or(0, |q| q.max_size().into()),
            0x044 => queue.map_or(0, |q| q.ready().into()),
            // SHMLenLow/High, SHMBaseLow/High: no device here has shared memory regions,
            // and a missing region reads as length -1 (virtio 1.2, 4.2.2). Reading 0
            // says "a region of length 0", which virtiofs takes for its DAX window and
            // fails to probe on.
            0x0b0 | 0x0b4 | 0x0b8 | 0x0bc => u32::MAX,
            0x070 => regs.status,
            // The configuration space never changes under the driver.
            0x0fc => 0,
            _ => 0,
        }
    }

    fn write_register(&self, regs: &mut Registers, offset: u64, value: u32) {
        let sel = regs.queue_sel as usize;
        // Queue registers may only change while the queue is not live.
        let queue = regs
            .queues
            .get_mut(sel)
            .filter(|q| !q.ready() || offset == 0x044);
        match (offset, queue) {
            (0x014, _) => regs.device_features_sel = value,
            (0x020, _) => match regs.driver_features_sel {
                0 => {
                    regs.driver_features = (regs.driver_features & !0xFFFF_FFFF) | u64::from(value)
                }
                1 => {
                    regs.driver_features =
                        (regs.driver_features & 0xFFFF_FFFF) | (u64::from(value) << 32)
                }
                _ => {}
            },
            (0x024, _) => regs.driver_features_sel = value,
            (0x030, _) => regs.queue_sel = value,
            (0x038, Some(q)) => q.set_size(value as u16),
            (0x044, Some(q)) => q.set_ready(value == 1),
            (0x050, _) => {
                if let Some(evt) = self.notify.get(value as usize) {
                    let _ = evt.write(1);
                }
            }
            (0x070, _) => self.write_status(regs, value),
            (0x080, Some(q)) => q.set_desc_table_address(Some(value), None),
            (0x084, Some(q)) => q.set_desc_table_address(None, Some(value)),
            (0x090, Some(q)) => q.set_avail_ring_address(Some(value), None),
            (0x094, Some(q)) => q.set_avail_ring_address(None, Some(value)),
            (0x0a0, Some(q)) => q.set_used_ring_address(Some(value), None),
            (0x0a4, Some(q)) => q.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    fn write_status(&self, regs: &mut Registers, value: u32) {
        if value == 0 {
            for q in &mut regs.queues {
                q.reset();
            }
            regs.device.reset();
            regs.status = 0;
            self.interrupt_status.store(0, Ordering::SeqCst);
            regs.driver_features = 0;
            regs.device_features_sel = 0;
            regs.driver_features_sel = 0;
            regs.queue_sel = 0;
            return;
        }
        let mut value = value;
        let newly = value & !regs.status;
        if newly & status::FEATURES_OK != 0 {
            let offered = regs.device.features();
            let acceptable =
                regs.driver_features & !offered == 0 && regs.driver_features & F_VERSION_1 != 0;
            if !acceptable {
                // The driver reads FEATURES_OK back and gives up: the spec's way to refuse.
                value &= !status::FEATURES_OK;
            } else {
                let event_idx = regs.driver_features & F_EVENT_IDX != 0;
                for q in &mut regs.queues {
                    q.set_event_idx(event_idx);
                }
            }
        }
        // NEEDS_RESET is the device's to set, never the driver's to clear.
        regs.status = value | (regs.status & status::DEVICE_NEEDS_RESET);
        if newly & status::DRIVER_OK != 0 && regs.device.queues_served_elsewhere() {
            let result = regs
                .device
                .activate(regs.driver_features, &regs.queues, &self.mem, &self.notify)
                .map(|()| false);
            self.finish(regs, result);
        }
        if newly & status::DRIVER_OK != 0 {
            // Drivers fill and kick queues during probe, before DRIVER_OK (virtio_console
            // does), and the device ignores queues until then: serve every queue once now,
            // so neither those buffers nor host input that came meanwhile wait forever.
            for evt in &self.notify {
                let _ = evt.write(1);
            }
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&self, offset: u64, data: &mut [u8]) {
        if offset == 0x060 && data.len() == 4 {
            let v = self.interrupt_status.load(Ordering::SeqCst);
            data.copy_from_slice(&v.to_le_bytes());
            return;
        }
        let regs = lock(&self.regs);
        if offset >= CONFIG_SPACE {
            regs.device.read_config(offset - CONFIG_SPACE, data);
            return;
        }
        // The registers are 32 bits wide and read as a whole (virtio 1.2, 4.2.2.2).
        data.fill(0);
        if data.len() == 4 && offset % 4 == 0 {
            data.copy_from_slice(&Self::read_register(&regs, offset).to_le_bytes());
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Flow {
        if offset >= CONFIG_SPACE {
            // No device here has writable configuration fields.
            return Flow::Continue;
        }
        if let Ok(bytes) = <[u8; 4]>::try_from(data)
            && offset == 0x064
        {
            let ack = u32::from_le_bytes(bytes);
            self.interrupt_status.fetch_and(!ack, Ordering::SeqCst);
            return Flow::Continue;
        }
        if let Ok(bytes) = <[u8; 4]>::try_from(data)
            && offset % 4 == 0
        {
            let mut regs = lock(&self.regs);
            self.write_register(&mut regs, offset, u32::from_le_bytes(bytes));
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    struct Dummy([u16; 1]);

    impl VirtioDevice for Dummy {
        fn device_type(&self) -> u32 {
            super::super::TYPE_RNG
        }
        fn state(&self) -> crate::devices::virtio::state::DeviceState {
            crate::devices::virtio::state::DeviceState::Rng
        }
        fn name(&self) -> String {
            "dummy".into()
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &self.0
        }
        fn features(&self) -> u64 {
            F_VERSION_1 | F_EVENT_IDX
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            super::super::read_config_bytes(&[7, 8], offset, data)
        }
        fn process_queue(
            &mut self,
            _: usize,
            _: &mut Queue,
            _: &GuestMemoryMmap,
        ) -> Result<bool, DeviceError> {
            Err(DeviceError("always broken".into()))
        }
    }

    fn transport() -> MmioTransport {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        MmioTransport::new(
            Box::new(Dummy([16])),
            EventFd::new(0).unwrap(),
            vec![EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap()],
            Arc::new(mem),
        )
        .unwrap()
    }

    fn r(t: &MmioTransport, off: u64) -> u32 {
        let mut d = [0u8; 4];
        t.read(off, &mut d);
        u32::from_le_bytes(d)
    }

    fn w(t: &MmioTransport, off: u64, v: u32) {
        assert_eq!(t.write(off, &v.to_le_bytes()), Flow::Continue);
    }

    #[test]
    fn identity_and_features() {
        let t = transport();
        assert_eq!(r(&t, 0), MAGIC);
        assert_eq!(r(&t, 4), 2);
        assert_eq!(r(&t, 8), super::super::TYPE_RNG);
        w(&t, 0x14, 1);
        assert_eq!(r(&t, 0x10), 1, "VERSION_1 is bit 32");
        assert_eq!(r(&t, 0x34), 16);
        w(&t, 0x30, 5);
        assert_eq!(r(&t, 0x34), 0, "no queue 5");
        w(&t, 0xac, 0);
        assert_eq!(
            (r(&t, 0xb0), r(&t, 0xb4)),
            (u32::MAX, u32::MAX),
            "no shared memory region 0: length -1"
        );
        let mut b = [0u8; 1];
        t.read(0x101, &mut b);
        assert_eq!(b, [8]);
    }

    #[test]
    fn features_ok_needs_version_1_and_only_offered_bits() {
        let t = transport();
        w(&t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
        w(
            &t,
            0x70,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(t.status() & status::FEATURES_OK, 0, "legacy driver refused");
        w(&t, 0x24, 1);
        w(&t, 0x20, 1);
        w(&t, 0x24, 0);
        w(&t, 0x20, 1 << 3);
        w(
            &t,
            0x70,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(t.status() & status::FEATURES_OK, 0, "unoffered bit refused");
        w(&t, 0x20, 0);
        w(
            &t,
            0x70,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_ne!(t.status() & status::FEATURES_OK, 0);
    }

    #[test]
    fn interrupt_status_does_not_wait_for_the_device() {
        let t = transport();
        t.interrupt_status
            .store(INT_VRING | INT_CONFIG, Ordering::SeqCst);
        // The device's thread holds the lock while it serves a queue.
        let held = lock(&t.regs);
        assert_eq!(r(&t, 0x60), INT_VRING | INT_CONFIG);
        w(&t, 0x64, INT_VRING);
        drop(held);
        assert_eq!(r(&t, 0x60), INT_CONFIG);
    }

    #[test]
    fn event_idx_is_set_on_the_queues_when_negotiated() {
        let t = transport();
        w(&t, 0x24, 1);
        w(&t, 0x20, 1);
        w(&t, 0x24, 0);
        w(&t, 0x20, 1 << 29);
        w(
            &t,
            0x70,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_ne!(t.status() & status::FEATURES_OK, 0);
        assert!(lock(&t.regs).queues[0].event_idx_enabled());
        w(&t, 0x70, 0);
        assert!(!lock(&t.regs).queues[0].event_idx_enabled(), "reset");
    }

    #[test]
    fn a_failing_device_needs_reset_and_reset_clears_it() {
        let t = transport();
        w(&t, 0x24, 1);
        w(&t, 0x20, 1);
        w(&t, 0x70, 0xF);
        w(&t, 0x44, 1);
        t.process(0);
        assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
        assert_eq!(r(&t, 0x60), INT_CONFIG);
        // The driver cannot clear it, only reset.
        w(&t, 0x70, 0xF);
        assert_ne!(t.status() & status::DEVICE_NEEDS_RESET, 0);
        w(&t, 0x70, 0);
        assert_eq!(t.status(), 0);
        assert_eq!(r(&t, 0x44), 0, "queues reset");
        // Unaligned and narrow accesses and out-of-range notifies do nothing.
        assert_eq!(t.write(0x52, &[1]), Flow::Continue);
        w(&t, 0x50, 99);
        let mut d = [0xAAu8; 2];
        t.read(0x0, &mut d);
        assert_eq!(d, [0, 0]);
    }
}
