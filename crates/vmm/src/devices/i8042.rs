//! The i8042 keyboard controller, with nothing plugged into it.
//!
//! It is there for two reasons. The guest resets the machine by writing 0xFE (pulse the
//! reset line) to its command port 0x64, which ends the run with
//! [`crate::Outcome::Reset`]. And a kernel without ACPI has no way to learn that there is
//! no controller, so it probes one: a controller that never answers costs it 1-4 s of
//! timeouts and a "Can't read CTR" complaint (seen with the tiny kernels on the nested
//! bench). So the controller answers every controller command at once, and says, in the
//! ways Linux's i8042 and atkbd drivers understand, that no mouse and no keyboard are
//! attached:
//!
//! - the AUX loopback (0xD3) does not echo and the AUX interface test (0xA9) reports a
//!   stuck clock, so Linux drops the AUX port without waiting for an interrupt;
//! - a byte sent to the keyboard comes back as 0xFE with the status register's timeout
//!   bit, raising IRQ 1 when the guest enabled it, so each keyboard command fails at once.
//!
//! vm-superio's `I8042Device` (used before) models only the reset command, so this small
//! state machine replaces it. Guests with ACPI are told in the FADT that there is no 8042
//! and never probe it.

use std::collections::VecDeque;

pub const DATA_PORT: u16 = 0x60;
pub const COMMAND_PORT: u16 = 0x64;
/// The keyboard's ISA interrupt.
pub const KBD_IRQ: u32 = 1;

const STATUS_OBF: u8 = 1 << 0;
const STATUS_SYS: u8 = 1 << 2;
const STATUS_CMD: u8 = 1 << 3;
/// Keyboard not inhibited (the key lock is open).
const STATUS_UNLOCKED: u8 = 1 << 4;
const STATUS_AUX: u8 = 1 << 5;
const STATUS_TIMEOUT: u8 = 1 << 6;

/// Controller configuration byte: keyboard interrupt enable (bit 0).
const CTR_KBD_INT: u8 = 1 << 0;
const CTR_SYS: u8 = 1 << 2;
const CTR_KBD_DISABLED: u8 = 1 << 4;
const CTR_AUX_DISABLED: u8 = 1 << 5;
const CTR_XLATE: u8 = 1 << 6;

/// A device's reply to a byte sent to it when nothing is attached (RESEND/error).
const NO_DEVICE: u8 = 0xFE;
/// Output buffer depth: a guest that never reads cannot grow memory.
const MAX_OUTPUT: usize = 16;

/// One byte waiting in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Output {
    byte: u8,
    aux: bool,
    timeout: bool,
}

/// What a write asked of the VMM.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Pulse the reset line: end the run.
    pub reset: bool,
    /// Raise IRQ 1.
    pub kbd_irq: bool,
}

/// Device state (serialisable: plain values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I8042 {
    ctr: u8,
    /// A command whose parameter byte the next data-port write is.
    pending: Option<u8>,
    output: VecDeque<Output>,
    last_was_command: bool,
    self_tested: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042 {
            // What firmware leaves: translation on, both ports enabled, interrupts off.
            ctr: CTR_XLATE | CTR_SYS,
            pending: None,
            output: VecDeque::new(),
            last_was_command: false,
            self_tested: false,
        }
    }
}

impl I8042 {
    pub fn contains(port: u16) -> bool {
        port == DATA_PORT || port == COMMAND_PORT
    }

    pub fn read(&mut self, port: u16) -> u8 {
        if port == COMMAND_PORT {
            return self.status();
        }
        self.output.pop_front().map_or(0, |o| o.byte)
    }

    fn status(&self) -> u8 {
        let mut s = STATUS_UNLOCKED;
        if self.self_tested || self.ctr & CTR_SYS != 0 {
            s |= STATUS_SYS;
        }
        if self.last_was_command {
            s |= STATUS_CMD;
        }
        if let Some(o) = self.output.front() {
            s |= STATUS_OBF;
            if o.aux {
                s |= STATUS_AUX;
            }
            if o.timeout {
                s |= STATUS_TIMEOUT;
            }
        }
        s
    }

    fn push(&mut self, byte: u8, aux: bool, timeout: bool) {
        if self.output.len() < MAX_OUTPUT {
            self.output.push_back(Output { byte, aux, timeout });
        }
    }

    pub fn write(&mut self, port: u16, value: u8) -> Effects {
        self.last_was_command = port == COMMAND_PORT;
        if port == COMMAND_PORT {
            return self.command(value);
        }
        match self.pending.take() {
            Some(0x60) => self.ctr = value,
            // AUX loopback: no mouse, so the byte does not come back as sent.
            Some(0xD3) => self.push(!value, true, false),
            // A byte for the mouse: nobody answers.
            Some(0xD4) => self.push(NO_DEVICE, true, true),
            // Output port (0xD1): bit 0 low would hold the CPU in reset.
            Some(0xD1) if value & 1 == 0 => return reset(),
            Some(_) => {}
            None => {
                // A byte for the keyboard: nobody answers.
                self.push(NO_DEVICE, false, true);
                return Effects {
                    reset: false,
                    kbd_irq: self.ctr & CTR_KBD_INT != 0,
                };
            }
        }
        Effects::default()
    }

    fn command(&mut self, cmd: u8) -> Effects {
        match cmd {
            0x20 => self.push(self.ctr, false, false),
            0x60 | 0xD1 | 0xD3 | 0xD4 => self.pending = Some(cmd),
            0xA7 => self.ctr |= CTR_AUX_DISABLED,
            0xA8 => self.ctr &= !CTR_AUX_DISABLED,
            // AUX interface test: 0x01, "clock line stuck low" (no mouse).
            0xA9 => self.push(0x01, false, false),
            0xAA => {
                self.self_tested = true;
                self.push(0x55, false, false);
            }
            // Keyboard interface test: passes (the port is there, empty).
            0xAB => self.push(0x00, false, false),
            0xAD => self.ctr |= CTR_KBD_DISABLED,
            0xAE => self.ctr &= !CTR_KBD_DISABLED,
            // Read the input port / output port.
            0xC0 => self.push(0x00, false, false),
            0xD0 => self.push(0x01, false, false),
            // Pulse output lines: bit 0 clear pulses the reset line.
            0xF0..=0xFF if cmd & 1 == 0 => return reset(),
            _ => {}
        }
        Effects::default()
    }
}

fn reset() -> Effects {
    Effects {
        reset: true,
        kbd_irq: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(k: &mut I8042, cmd: u8) -> Option<u8> {
        k.write(COMMAND_PORT, cmd);
        (k.read(COMMAND_PORT) & STATUS_OBF != 0).then(|| k.read(DATA_PORT))
    }

    #[test]
    fn reset_command() {
        let mut k = I8042::default();
        assert!(!k.write(COMMAND_PORT, 0xAA).reset);
        assert!(!k.write(DATA_PORT, 0xFE).reset);
        assert!(k.write(COMMAND_PORT, 0xFE).reset);
        assert!(!k.write(COMMAND_PORT, 0x00).reset);
    }

    #[test]
    fn answers_what_linux_asks_at_once() {
        let mut k = I8042::default();
        assert_eq!(command(&mut k, 0xAA), Some(0x55), "self test");
        let ctr = command(&mut k, 0x20).unwrap();
        k.write(COMMAND_PORT, 0x60);
        k.write(DATA_PORT, ctr | CTR_KBD_INT);
        assert_eq!(
            command(&mut k, 0x20),
            Some(ctr | CTR_KBD_INT),
            "CTR written back"
        );
        // No mouse: the loopback does not echo, the AUX test fails.
        k.write(COMMAND_PORT, 0xD3);
        k.write(DATA_PORT, 0x5A);
        assert_ne!(k.read(DATA_PORT), 0x5A);
        assert_eq!(command(&mut k, 0xA9), Some(0x01));
        // No keyboard: a command to it times out at once, with an interrupt.
        let fx = k.write(DATA_PORT, 0xF2);
        assert!(fx.kbd_irq);
        let status = k.read(COMMAND_PORT);
        assert_eq!(
            status & (STATUS_OBF | STATUS_TIMEOUT),
            STATUS_OBF | STATUS_TIMEOUT
        );
        assert_eq!(k.read(DATA_PORT), NO_DEVICE);
        assert_eq!(k.read(COMMAND_PORT) & STATUS_OBF, 0, "empty again");
    }

    #[test]
    fn garbage_is_bounded_and_harmless() {
        let mut k = I8042::default();
        for v in 0..=255u8 {
            if v & 0xF0 != 0xF0 {
                k.write(COMMAND_PORT, v);
            }
            k.write(DATA_PORT, v);
        }
        assert!(k.output.len() <= MAX_OUTPUT);
    }
}
