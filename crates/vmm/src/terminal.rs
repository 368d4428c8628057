//! Raw mode for an interactive console: the guest gets every key (Ctrl-C included; Ctrl-A
//! x leaves), and the terminal's previous settings come back when the guard is dropped —
//! on every way out of [`crate::run`]: a normal end, an error, a stop signal (the handlers
//! only set a flag, so the run returns normally) and a panic (drop runs during unwinding).
//! Only SIGKILL can leave the terminal raw (`stty sane` fixes it).

use std::io;
use std::os::unix::io::RawFd;

pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

/// True when `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

fn get(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: all-zero is a valid termios for tcgetattr to overwrite.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios; the return value is checked.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

fn set(fd: RawFd, t: &libc::termios) -> io::Result<()> {
    // SAFETY: `t` is a valid termios; the return value is checked.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl RawTerminal {
    /// Puts `fd` in raw mode; `Ok(None)` when it is not a terminal.
    pub fn new(fd: RawFd) -> io::Result<Option<RawTerminal>> {
        if !is_tty(fd) {
            return Ok(None);
        }
        let saved = get(fd)?;
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // Keep output processing (\n → \r\n) as QEMU's -nographic does: guests that print
        // bare newlines stay readable.
        raw.c_oflag |= libc::OPOST;
        set(fd, &raw)?;
        Ok(Some(RawTerminal { fd, saved }))
    }

    /// The settings that will be restored.
    pub fn saved(&self) -> &libc::termios {
        &self.saved
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = set(self.fd, &self.saved);
    }
}
