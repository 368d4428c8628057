//! The ACPI sleep registers of a hardware-reduced platform (ACPI 6.5 §4.8.3.7 and
//! §4.8.3.8), which is how a guest powers the machine off: the FADT's `SLEEP_CONTROL_REG`
//! is I/O port [`SLEEP_CONTROL_PORT`] and its `SLEEP_STATUS_REG` is [`SLEEP_STATUS_PORT`],
//! one byte each. Linux's `acpi_power_off` (through `acpi_hw_extended_sleep`) writes
//! `SLP_TYP << 2 | SLP_EN` to the control register, with `SLP_TYP` taken from the DSDT's
//! `\_S5_` package ([`S5_SLP_TYP`]); that ends the run as [`crate::Outcome::PowerOff`].
//!
//! Any other control write (another sleep type, `SLP_EN` clear) is ignored: domboot has no
//! sleep states but S5. Writes to the status register (Linux clears `WAK_STS` there before
//! sleeping) are accepted and change nothing. Both registers read as 0: `SLP_EN` is
//! write-only and reads as 0, and `WAK_STS` is clear because the machine never wakes.

/// `SLEEP_CONTROL_REG`: a byte-wide SystemIO register.
pub const SLEEP_CONTROL_PORT: u16 = 0x600;
/// `SLEEP_STATUS_REG`: a byte-wide SystemIO register right after the control register.
pub const SLEEP_STATUS_PORT: u16 = 0x601;
/// `SLP_TYPx`, bits 2–4 of the control register.
pub const SLP_TYP_SHIFT: u8 = 2;
pub const SLP_TYP_MASK: u8 = 0x7 << SLP_TYP_SHIFT;
/// `SLP_EN`, bit 5 of the control register: enter the sleep state in `SLP_TYP`.
pub const SLP_EN: u8 = 1 << 5;
/// The sleep type the DSDT's `\_S5_` declares (the soft-off state).
pub const S5_SLP_TYP: u8 = 5;
/// `WAK_STS`, bit 7 of the status register.
pub const WAK_STS: u8 = 1 << 7;

pub fn contains(port: u16) -> bool {
    port == SLEEP_CONTROL_PORT || port == SLEEP_STATUS_PORT
}

/// What a write asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// SLP_EN with SLP_TYP = S5: power off.
    PowerOff,
    /// Anything else: ignored; the text says what it was (for `verbose`).
    Ignored(String),
    /// The write to the status register that clears WAK_STS: expected, nothing to say.
    Nothing,
}

/// Decodes a write of `data` (little-endian, the first byte at `port`).
pub fn write(port: u16, data: &[u8]) -> Request {
    let value = data.first().copied().unwrap_or(0);
    if port == SLEEP_STATUS_PORT {
        return if value & !WAK_STS == 0 {
            Request::Nothing
        } else {
            Request::Ignored(format!("sleep status register write {value:#04x}"))
        };
    }
    let typ = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
    if value & SLP_EN != 0 && typ == S5_SLP_TYP {
        Request::PowerOff
    } else if value & SLP_EN != 0 {
        Request::Ignored(format!(
            "sleep control register write {value:#04x}: sleep type {typ} is not S5 ({S5_SLP_TYP}), \
             the only sleep state this machine has"
        ))
    } else {
        Request::Ignored(format!(
            "sleep control register write {value:#04x} without SLP_EN"
        ))
    }
}

/// Fills a read: both registers read as 0.
pub fn read(data: &mut [u8]) {
    data.fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slp_en_with_s5_powers_off() {
        let s5 = (S5_SLP_TYP << SLP_TYP_SHIFT) | SLP_EN;
        assert_eq!(s5, 0x34);
        assert_eq!(write(SLEEP_CONTROL_PORT, &[s5]), Request::PowerOff);
        // Wider writes: the low byte is the control register.
        assert_eq!(write(SLEEP_CONTROL_PORT, &[s5, 0, 0, 0]), Request::PowerOff);
        // Reserved bits do not hide the request.
        assert_eq!(write(SLEEP_CONTROL_PORT, &[s5 | 0xC3]), Request::PowerOff);
        for v in [0x00, 0x14, 0x20, 0x2C, 0x3C, 0xFF, 0x1F] {
            assert!(
                matches!(write(SLEEP_CONTROL_PORT, &[v]), Request::Ignored(_)),
                "{v:#x}"
            );
        }
        assert!(matches!(
            write(SLEEP_CONTROL_PORT, &[]),
            Request::Ignored(_)
        ));
        assert_eq!(write(SLEEP_STATUS_PORT, &[WAK_STS]), Request::Nothing);
        assert!(matches!(
            write(SLEEP_STATUS_PORT, &[s5]),
            Request::Ignored(_)
        ));
        let mut v = [0xAAu8; 4];
        read(&mut v);
        assert_eq!(v, [0; 4]);
        assert!(contains(0x600) && contains(0x601) && !contains(0x602) && !contains(0x5FF));
    }
}
