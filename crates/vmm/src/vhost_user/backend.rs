//! [`DeviceBackend`]: a domboot [`VirtioDevice`] as a vhost-user-backend
//! [`VhostUserBackend`], so that the crate's daemon serves the device's queues to a
//! vhost-user frontend (QEMU) the way the KVM backend's transport serves them to a guest.
//!
//! The calls map one to one onto what [`crate::devices::virtio::mmio::MmioTransport`] and
//! the device manager's worker do: a kicked queue is served with
//! [`VirtioDevice::process_queue`], the device's [`VirtioDevice::backend_fd`] becoming
//! readable with [`VirtioDevice::process_backend`], and the frontend stopping the rings
//! (QEMU's GET_VRING_BASE when the guest resets the device or the VM stops) or sending
//! RESET_DEVICE with [`VirtioDevice::reset`].

use crate::devices::virtio::{DeviceError, VirtioDevice};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

/// The guest memory the frontend shares (a memfd it sends with SET_MEM_TABLE).
pub type Memory = GuestMemoryAtomic<GuestMemoryMmap>;
type Vring = VringRwLock<Memory>;

/// The largest configuration space read answered: the vhost-user message's limit.
const MAX_CONFIG: u32 = 256;

/// A domboot device behind a vhost-user daemon. One vring worker thread serves every
/// queue (the crate's default), so the device sees one caller at a time, as under the
/// KVM device manager; the mutex only orders it with the frontend's requests (config
/// reads, resets), which arrive on the daemon's own thread.
pub struct DeviceBackend {
    name: String,
    num_queues: usize,
    max_queue_size: usize,
    features: u64,
    backend_fd: Option<RawFd>,
    state: Mutex<State>,
}

struct State {
    device: Box<dyn VirtioDevice>,
    mem: Memory,
    /// The device failed on what the guest handed it: it serves nothing until reset
    /// (vhost-user has no way to tell the frontend DEVICE_NEEDS_RESET).
    broken: bool,
}

impl DeviceBackend {
    pub fn new(device: Box<dyn VirtioDevice>, mem: Memory) -> DeviceBackend {
        let sizes = device.queue_max_sizes();
        DeviceBackend {
            name: device.name(),
            num_queues: sizes.len(),
            max_queue_size: sizes.iter().copied().max().unwrap_or(0).into(),
            features: device.features() | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(),
            backend_fd: device.backend_fd(),
            state: Mutex::new(State {
                device,
                mem,
                broken: false,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's host-side fd, to be watched by the vring worker with
    /// [`DeviceBackend::backend_token`] (see [`VirtioDevice::backend_fd`]).
    pub fn backend_fd(&self) -> Option<RawFd> {
        self.backend_fd
    }

    /// The event number of the backend fd: the crate reserves 0..num_queues for the
    /// queues and num_queues for its exit and vring-enabled events.
    pub fn backend_token(&self) -> u64 {
        self.num_queues as u64 + 1
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while serving cannot leave the device half-updated in a way worse than
        // a guest's garbage does; carry on with it rather than poison every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves the kicked queue `index`.
    fn serve_queue(&self, index: usize, vrings: &[Vring]) {
        let Some(vring) = vrings.get(index) else {
            return;
        };
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.broken {
            return;
        }
        let mem = state.mem.memory();
        let mut vring_state = vring.get_mut();
        if !vring_state.is_enabled() || !vring_state.get_queue().ready() {
            return;
        }
        let queue = vring_state.get_queue_mut();
        let result = if queue.is_valid(&*mem) {
            state.device.process_queue(index, queue, &mem)
        } else {
            Err(DeviceError::invalid_queue(index, queue))
        };
        drop(mem);
        match result {
            Ok(true) => signal(&self.name, index, vring_state.signal_used_queue()),
            Ok(false) => {}
            Err(e) => self.fail(state, e),
        }
    }

    /// Serves the device's backend: the device gets every queue, those the frontend has
    /// not enabled (or that are invalid) marked not ready, and each queue it used buffers
    /// of is signalled.
    fn serve_backend(&self, vrings: &[Vring]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.broken {
            return;
        }
        let mem = state.mem.memory();
        let mut guards: Vec<_> = vrings.iter().map(|v| v.get_mut()).collect();
        // Queue is not Clone: each is moved out for the call and back in after it.
        let mut queues: Vec<Queue> = Vec::with_capacity(guards.len());
        let mut hidden = Vec::with_capacity(guards.len());
        for g in &mut guards {
            let usable = g.is_enabled() && g.get_queue().is_valid(&*mem);
            let mut q = std::mem::take(g.get_queue_mut());
            let ready = q.ready();
            if !usable {
                q.set_ready(false);
            }
            hidden.push((!usable).then_some(ready));
            queues.push(q);
        }
        let before: Vec<u16> = queues.iter().map(|q| q.next_used()).collect();
        let result = state.device.process_backend(&mut queues, &mem);
        drop(mem);
        for (i, (g, mut q)) in guards.iter_mut().zip(queues).enumerate() {
            if let Some(ready) = hidden[i] {
                q.set_ready(ready);
            }
            let used = q.next_used() != before[i];
            *g.get_queue_mut() = q;
            if used {
                signal(&self.name, i, g.signal_used_queue());
            }
        }
        if let Err(e) = result {
            self.fail(state, e);
        }
    }

    fn fail(&self, state: &mut State, e: DeviceError) {
        eprintln!(
            "domboot-vmm: {}: {e}; the device stops until the guest resets it",
            self.name
        );
        state.broken = true;
    }

    fn reset(&self) {
        let mut state = self.lock();
        state.device.reset();
        state.broken = false;
    }
}

/// A failed call notification is the frontend's problem (its eventfd is gone): say so.
fn signal(name: &str, index: usize, result: io::Result<()>) {
    if let Err(e) = result {
        eprintln!("domboot-vmm: {name}: signalling queue {index}: {e}");
    }
}

impl VhostUserBackend for DeviceBackend {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        self.num_queues
    }

    fn max_queue_size(&self) -> usize {
        self.max_queue_size
    }

    fn features(&self) -> u64 {
        self.features
    }

    /// CONFIG: QEMU's vhost-user-vsock reads the guest's CID with GET_CONFIG and refuses
    /// a backend without it. MQ: the frontend asks how many queues there are (vsock's
    /// three, of which QEMU hands over rx and tx and keeps the event queue).
    /// RESET_DEVICE: a frontend resetting the device reaches [`VirtioDevice::reset`].
    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        self.reset();
    }

    /// Devices served this way do not offer EVENT_IDX: nothing to switch.
    fn set_event_idx(&self, _enabled: bool) {}

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut data = vec![0; size.min(MAX_CONFIG) as usize];
        self.lock().device.read_config(offset.into(), &mut data);
        data
    }

    fn update_memory(&self, mem: Memory) -> io::Result<()> {
        self.lock().mem = mem;
        Ok(())
    }

    /// A ring stopped (GET_VRING_BASE): the frontend is stopping the device, because the
    /// guest reset it or the VM is going. Like the driver's reset on the KVM backend,
    /// that ends the device's state (vsock: every connection); done at each ring's stop,
    /// so nothing the device did between the first and the last survives.
    fn stop_vring(&self, _queue_index: u32) -> io::Result<()> {
        self.reset();
        Ok(())
    }

    /// The vring worker's exit event, notified when the daemon's connection ends, so that
    /// the worker (and with it the device) goes.
    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok(pair) => Some(pair),
            Err(e) => {
                eprintln!("domboot-vmm: {}: exit eventfd: {e}", self.name);
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[Vring],
        _thread_id: usize,
    ) -> io::Result<()> {
        let event = usize::from(device_event);
        if event < self.num_queues {
            self.serve_queue(event, vrings);
        } else if u64::from(device_event) == self.backend_token() {
            self.serve_backend(vrings);
        }
        // Errors stay in the device (it is broken until reset): an Err here would end the
        // vring worker for good.
        Ok(())
    }
}
