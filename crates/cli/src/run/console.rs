//! The terminal while a guest owns the console: raw mode when interactive, restored on
//! every exit path (normal return, error, panic unwinding, and signals through the caller's
//! shutdown path, which drops the guard).

use std::io::IsTerminal;

/// Puts stdin in raw mode for as long as it lives, when stdin is a terminal.
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    /// Raw mode if stdin is a terminal; a no-op guard otherwise.
    pub fn enter() -> RawTerminal {
        if !std::io::stdin().is_terminal() {
            return RawTerminal { saved: None };
        }
        // SAFETY: termios is plain old data; tcgetattr fills it and we check its result
        // before using it.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is stdin, open for the life of the process; `t` is a valid pointer.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return RawTerminal { saved: None };
        }
        let saved = t;
        // SAFETY: `t` is a valid termios obtained above.
        unsafe { libc::cfmakeraw(&mut t) };
        // Keep output post-processing so the host's newlines still render.
        t.c_oflag |= libc::OPOST;
        // SAFETY: fd 0 is stdin; `t` is a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) } != 0 {
            return RawTerminal { saved: None };
        }
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the attributes tcgetattr returned for the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}
