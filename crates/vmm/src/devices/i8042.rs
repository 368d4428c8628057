//! The i8042 keyboard controller, for one thing only: the guest resets the machine by
//! writing 0xFE (pulse the reset line) to its command port 0x64, which ends the run with
//! [`crate::Outcome::Reset`]. Data port 0x60 reads 0; the status port reads 0 (no data).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vm_superio::{I8042Device, Trigger};

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;

/// Records a reset request; the vCPU that wrote it ends the run.
#[derive(Clone, Debug, Default)]
pub struct ResetFlag(Arc<AtomicBool>);

impl ResetFlag {
    /// True once, after the guest asked for a reset.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

pub struct I8042 {
    dev: I8042Device<ResetFlag>,
    flag: ResetFlag,
}

impl Default for I8042 {
    fn default() -> Self {
        let flag = ResetFlag::default();
        I8042 {
            dev: I8042Device::new(flag.clone()),
            flag,
        }
    }
}

impl I8042 {
    pub fn contains(port: u16) -> bool {
        port == DATA_PORT || port == COMMAND_PORT
    }

    pub fn read(&mut self, port: u16) -> u8 {
        self.dev.read((port - DATA_PORT) as u8)
    }

    /// Returns true when the write asked for a reset.
    pub fn write(&mut self, port: u16, value: u8) -> bool {
        let _ = self.dev.write((port - DATA_PORT) as u8, value);
        self.flag.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command() {
        let mut k = I8042::default();
        assert!(!k.write(COMMAND_PORT, 0xAA));
        assert!(!k.write(DATA_PORT, 0xFE));
        assert!(k.write(COMMAND_PORT, 0xFE));
        assert!(!k.write(COMMAND_PORT, 0x00));
        assert_eq!(k.read(COMMAND_PORT), 0);
    }
}
