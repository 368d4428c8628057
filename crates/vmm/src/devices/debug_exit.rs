//! The debug-exit port, QEMU's `isa-debug-exit` convention: a write of value `v` to I/O
//! port 0xF4 (any width, anywhere in 0xF4..=0xF7) ends the run; domboot exits with status
//! `v & 0xFF`. (QEMU itself exits with `(v << 1) | 1`, so the same guest works under TCG
//! and the TCG path maps the status back.) Reads return all ones, as from an empty bus.

pub const DEBUG_EXIT_PORT: u16 = 0xF4;
pub const DEBUG_EXIT_SIZE: u16 = 4;

pub fn contains(port: u16) -> bool {
    (DEBUG_EXIT_PORT..DEBUG_EXIT_PORT + DEBUG_EXIT_SIZE).contains(&port)
}

/// The status a write of `data` (little-endian, 1 to 4 bytes) asks for.
pub fn status(data: &[u8]) -> u8 {
    data.first().copied().unwrap_or(0)
}

/// What QEMU's isa-debug-exit makes of the same write: its process exit status.
pub fn qemu_status(value: u32) -> u8 {
    ((value << 1) | 1) as u8
}

/// Recovers the guest's value from a QEMU exit status (odd statuses only; the top bit of
/// the value is lost to the shift).
pub fn from_qemu_status(status: i32) -> Option<u8> {
    (status & 1 == 1 && (0..=255).contains(&status)).then_some((status >> 1) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_statuses() {
        assert!(contains(0xF4) && contains(0xF7) && !contains(0xF8) && !contains(0xF3));
        assert_eq!(status(&[0x10, 0, 0, 0]), 0x10);
        assert_eq!(qemu_status(0x10), 0x21);
        assert_eq!(from_qemu_status(0x21), Some(0x10));
        assert_eq!(from_qemu_status(2), None);
    }
}
