//! [`Server`]: one device served to one vhost-user frontend, on threads of domboot's own.
//!
//! The listening socket exists when [`Server::start`] returns, so the frontend can be
//! started at once. A thread waits for the frontend's connection, then the daemon serves
//! it (its request thread, and a vring worker that calls the device) until the frontend
//! goes; the device is dropped with the daemon, so what it owns on the host (vsock: the
//! hybrid socket) goes too. [`Server::gone`] tells a serving thread that ended while the
//! frontend should still be there; dropping the [`Server`] stops it, whatever its state.

use super::backend::{DeviceBackend, Memory};
use crate::devices::virtio::VirtioDevice;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use vhost::vhost_user::{Error as VhostUserError, Listener};
use vhost_user_backend::{Error as DaemonError, ShutdownHandle, VhostUserDaemon};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// How long the thread gets to end once the server is dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Setting up or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listening on {}: {}", .0.display(), .1)]
    Listen(PathBuf, io::Error),
    #[error("{0}: {1}")]
    Fd(&'static str, io::Error),
    /// The vhost-user daemon failed (its error type is not a std error, hence the text).
    #[error("vhost-user: {0}")]
    Daemon(String),
    #[error("starting its thread: {0}")]
    Thread(io::Error),
}

impl From<DaemonError> for ServerError {
    fn from(e: DaemonError) -> Self {
        ServerError::Daemon(e.to_string())
    }
}

/// What the thread left: `None` while it runs (or if it panicked).
type Outcome = Arc<Mutex<Option<Result<(), ServerError>>>>;

pub struct Server {
    name: String,
    stop: EventFd,
    /// Set while the daemon serves a frontend: ends its connection.
    shutdown: Arc<Mutex<Option<ShutdownHandle>>>,
    outcome: Outcome,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Listens on `socket` (in a folder of the caller's; it must not exist) and serves
    /// `device` to the first frontend that connects there.
    pub fn start(device: Box<dyn VirtioDevice>, socket: &Path) -> Result<Server, ServerError> {
        let listener =
            UnixListener::bind(socket).map_err(|e| ServerError::Listen(socket.to_owned(), e))?;
        let mem = Memory::new(GuestMemoryMmap::new());
        let backend = Arc::new(DeviceBackend::new(device, mem.clone()));
        let name = backend.name().to_owned();
        let daemon = VhostUserDaemon::new(name.clone(), backend.clone(), mem)?;
        if let Some(fd) = backend.backend_fd() {
            // Edge-triggered, as under the KVM device manager: the device drains its
            // backend until it would block or the guest has no buffers left, and the
            // guest's next buffers (a kick) resume it.
            for handler in daemon.get_epoll_handlers() {
                handler
                    .register_listener(
                        fd,
                        EventSet::IN | EventSet::EDGE_TRIGGERED,
                        backend.backend_token(),
                    )
                    .map_err(|e| ServerError::Fd("epoll", e))?;
            }
        }
        drop(backend);
        let stop = EventFd::new(EFD_NONBLOCK).map_err(|e| ServerError::Fd("eventfd", e))?;
        let thread_stop = stop
            .try_clone()
            .map_err(|e| ServerError::Fd("eventfd", e))?;
        let shutdown = Arc::new(Mutex::new(None));
        let outcome: Outcome = Arc::new(Mutex::new(None));
        let (slot, result) = (shutdown.clone(), outcome.clone());
        let thread = std::thread::Builder::new()
            .name("vhost-user".into())
            .spawn(move || {
                let r = serve(daemon, listener, &thread_stop, &slot);
                *lock(&result) = Some(r);
            })
            .map_err(ServerError::Thread)?;
        Ok(Server {
            name,
            stop,
            shutdown,
            outcome,
            thread: Some(thread),
        })
    }

    /// Once, after the serving thread has ended (the frontend closed its connection, or
    /// the daemon failed): why, for a warning. The device is gone by then.
    pub fn gone(&mut self) -> Option<String> {
        if !self.thread.as_ref()?.is_finished() {
            return None;
        }
        let _ = self.thread.take()?.join();
        let why = match lock(&self.outcome).take() {
            Some(Ok(())) => "the frontend closed its connection".to_owned(),
            Some(Err(e)) => e.to_string(),
            None => "its thread panicked".to_owned(),
        };
        Some(format!("{}: served over vhost-user: {why}", self.name))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(h) = lock(&self.shutdown).take() {
            h.shutdown();
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        let left = crate::threads::join_within(vec![thread], STOP_GRACE, |_| {});
        if !left.is_empty() {
            eprintln!(
                "domboot-vmm: {}: the vhost-user thread did not stop within {} s; leaving it",
                self.name,
                STOP_GRACE.as_secs()
            );
        }
    }
}

/// Waits for the frontend (or `stop`), then serves it until it goes.
fn serve(
    mut daemon: VhostUserDaemon<Arc<DeviceBackend>>,
    listener: UnixListener,
    stop: &EventFd,
    slot: &Mutex<Option<ShutdownHandle>>,
) -> Result<(), ServerError> {
    if !frontend_arrived(&listener, stop)? {
        return Ok(());
    }
    // A Listener made from a UnixListener leaves the socket file alone; the caller's
    // folder holds it.
    let mut listener = Listener::from(listener);
    daemon.start(&mut listener)?;
    // One frontend: a second connection is refused rather than left waiting.
    drop(listener);
    *lock(slot) = daemon.shutdown_handle();
    if stop.read().is_ok() {
        // Stopped between the connection and the handle being there.
        daemon.request_shutdown();
    }
    let result = match daemon.wait() {
        Err(DaemonError::HandleRequest(
            VhostUserError::Disconnected | VhostUserError::PartialMessage,
        )) => Ok(()),
        r => r.map_err(ServerError::from),
    };
    lock(slot).take();
    // Ends the vring worker (the daemon's exit event) and joins it: the device goes.
    drop(daemon);
    result
}

/// Whether a frontend connected (false: `stop` came first).
fn frontend_arrived(listener: &UnixListener, stop: &EventFd) -> Result<bool, ServerError> {
    let epoll = Epoll::new().map_err(|e| ServerError::Fd("epoll", e))?;
    for (fd, token) in [(listener.as_raw_fd(), 0), (stop.as_raw_fd(), 1)] {
        epoll
            .ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
            .map_err(|e| ServerError::Fd("epoll", e))?;
    }
    let mut events = [EpollEvent::default(); 2];
    loop {
        match epoll.wait(-1, &mut events) {
            Ok(n) => return Ok(!events[..n].iter().any(|e| e.data() == 1)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ServerError::Fd("epoll", e)),
        }
    }
}
