//! The CMOS RTC (MC146818) at I/O ports 0x70 (index) and 0x71 (data), reading the host's
//! clock.
//!
//! Kernels without kvm-clock (the tiny test kernels, any kernel built without
//! `CONFIG_KVM_GUEST`) take the wall clock from here; without it they start at 1970-01-01
//! and poll the update-in-progress bit tens of thousands of times. No maintained crate
//! models the x86 CMOS (vm-superio has the ARM PL031 only), and the part a guest uses is
//! small: the time registers, status A-D and the century byte, plus 128 bytes of RAM.
//!
//! Time registers follow status B: BCD unless the guest sets DM (bit 2), 24-hour unless it
//! clears 24/12 (bit 1). A guest that writes the time sets an offset from the host clock.
//! The NMI-disable bit (7) of the index is ignored.

use std::time::{SystemTime, UNIX_EPOCH};

pub const INDEX_PORT: u16 = 0x70;
pub const DATA_PORT: u16 = 0x71;
/// The ISA interrupt the DSDT names for it (never raised: no alarms or periodic ticks).
pub const RTC_IRQ: u32 = 8;

const SECONDS: usize = 0x00;
const MINUTES: usize = 0x02;
const HOURS: usize = 0x04;
const WEEKDAY: usize = 0x06;
const DAY: usize = 0x07;
const MONTH: usize = 0x08;
const YEAR: usize = 0x09;
const STATUS_A: usize = 0x0A;
const STATUS_B: usize = 0x0B;
const STATUS_C: usize = 0x0C;
const STATUS_D: usize = 0x0D;
const CENTURY: usize = 0x32;

const B_24H: u8 = 1 << 1;
const B_BINARY: u8 = 1 << 2;
const B_SET: u8 = 1 << 7;

/// Device state (serialisable: plain numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
    /// Seconds added to the host clock (the guest set its own time).
    offset: i64,
}

impl Default for Cmos {
    fn default() -> Self {
        let mut ram = [0u8; 128];
        // Divider 010 (32.768 kHz), rate 0110 (1024 Hz): what firmware leaves.
        ram[STATUS_A] = 0x26;
        ram[STATUS_B] = B_24H;
        // VRT: the battery is good and the RAM valid.
        ram[STATUS_D] = 0x80;
        Cmos {
            index: 0,
            ram,
            offset: 0,
        }
    }
}

impl Cmos {
    pub fn contains(port: u16) -> bool {
        port == INDEX_PORT || port == DATA_PORT
    }

    pub fn read(&mut self, port: u16) -> u8 {
        if port == INDEX_PORT {
            return self.index;
        }
        let i = usize::from(self.index & 0x7F);
        match i {
            SECONDS..=YEAR | CENTURY => self.time_register(i, now() + self.offset),
            // Update-in-progress (bit 7) is never set: the registers are computed on read.
            STATUS_A => self.ram[STATUS_A] & 0x7F,
            // Reading C clears the interrupt flags; none are ever raised.
            STATUS_C => 0,
            _ => self.ram[i],
        }
    }

    pub fn write(&mut self, port: u16, value: u8) {
        if port == INDEX_PORT {
            self.index = value;
            return;
        }
        let i = usize::from(self.index & 0x7F);
        match i {
            SECONDS..=YEAR | CENTURY => {
                self.ram[i] = value;
                if self.ram[STATUS_B] & B_SET == 0 {
                    self.adopt_guest_time();
                }
            }
            STATUS_B => {
                let was_setting = self.ram[STATUS_B] & B_SET != 0;
                // The new format first: the frozen registers below are in it, and so is
                // what the guest writes next (the old order froze BCD minutes that then
                // read as binary, an hour off).
                self.ram[STATUS_B] = value;
                if !was_setting && value & B_SET != 0 {
                    // Freeze what the guest is about to edit at the current time.
                    let t = now() + self.offset;
                    for r in [SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR, CENTURY] {
                        self.ram[r] = self.time_register(r, t);
                    }
                }
                if was_setting && value & B_SET == 0 {
                    self.adopt_guest_time();
                }
            }
            STATUS_C | STATUS_D => {}
            _ => self.ram[i] = value,
        }
    }

    /// Register `i` for Unix time `t`, in the format status B asks for.
    fn time_register(&self, i: usize, t: i64) -> u8 {
        let b = self.ram[STATUS_B];
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let value = match i {
            SECONDS => (secs % 60) as u8,
            MINUTES => (secs / 60 % 60) as u8,
            HOURS => {
                let h = (secs / 3600) as u8;
                if b & B_24H != 0 {
                    h
                } else {
                    // 12-hour: 1-12, bit 7 for PM (applied after BCD below).
                    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                    return self.encode(h12) | if h >= 12 { 0x80 } else { 0 };
                }
            }
            // 1 = Sunday; 1970-01-01 was a Thursday.
            WEEKDAY => ((days + 4).rem_euclid(7) + 1) as u8,
            DAY => d as u8,
            MONTH => m as u8,
            YEAR => y.rem_euclid(100) as u8,
            CENTURY => y.div_euclid(100).clamp(0, 99) as u8,
            _ => 0,
        };
        self.encode(value)
    }

    fn encode(&self, v: u8) -> u8 {
        if self.ram[STATUS_B] & B_BINARY != 0 {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, v: u8) -> i64 {
        if self.ram[STATUS_B] & B_BINARY != 0 {
            i64::from(v)
        } else {
            i64::from((v >> 4) * 10 + (v & 0xF))
        }
    }

    /// Takes the time registers the guest wrote as the new clock (an offset from the
    /// host's). Nonsense values (month 13) give nonsense dates, never a panic.
    fn adopt_guest_time(&mut self) {
        let r = |s: &Self, i: usize| s.decode(s.ram[i]);
        let mut hour = r(self, HOURS);
        if self.ram[STATUS_B] & B_24H == 0 {
            let pm = self.ram[HOURS] & 0x80 != 0;
            hour = self.decode(self.ram[HOURS] & 0x7F) % 12 + if pm { 12 } else { 0 };
        }
        let year = r(self, CENTURY) * 100 + r(self, YEAR);
        let days = days_from_civil(year, r(self, MONTH).clamp(1, 12), r(self, DAY).clamp(1, 31));
        let t = days * 86_400 + hour * 3600 + r(self, MINUTES) * 60 + r(self, SECONDS);
        self.offset = t - now();
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// (year, month, day) of the day `z` days after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(c: &mut Cmos, i: u8) -> u8 {
        c.write(INDEX_PORT, i);
        c.read(DATA_PORT)
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-1000, 0, 59, 10_957, 20_000, 19_693, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
    }

    #[test]
    fn reads_the_host_date_in_bcd() {
        let mut c = Cmos::default();
        let (y, m, d) = civil_from_days(now() / 86_400);
        let bcd = |v: i64| (((v / 10) << 4) | (v % 10)) as u8;
        assert_eq!(reg(&mut c, YEAR as u8), bcd(y % 100));
        assert_eq!(reg(&mut c, CENTURY as u8), bcd(y / 100));
        assert_eq!(reg(&mut c, MONTH as u8), bcd(m));
        assert_eq!(reg(&mut c, DAY as u8), bcd(d));
        assert_eq!(reg(&mut c, STATUS_A as u8) & 0x80, 0, "never updating");
        assert_eq!(reg(&mut c, STATUS_D as u8), 0x80);
    }

    #[test]
    fn binary_mode_and_guest_set_time() {
        let mut c = Cmos::default();
        c.write(INDEX_PORT, STATUS_B as u8);
        c.write(DATA_PORT, B_24H | B_BINARY | B_SET);
        for (r, v) in [
            (YEAR, 30u8),
            (CENTURY, 20),
            (MONTH, 6),
            (DAY, 15),
            (HOURS, 13),
        ] {
            c.write(INDEX_PORT, r as u8);
            c.write(DATA_PORT, v);
        }
        c.write(INDEX_PORT, STATUS_B as u8);
        c.write(DATA_PORT, B_24H | B_BINARY);
        assert_eq!(reg(&mut c, YEAR as u8), 30);
        assert_eq!(reg(&mut c, MONTH as u8), 6);
        assert_eq!(reg(&mut c, HOURS as u8), 13);
        assert!(
            reg(&mut c, MINUTES as u8) < 60,
            "minutes stay binary and in range"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut c = Cmos::default();
        for i in 0..=255u8 {
            for v in [0u8, 0x7F, 0x99, 0xFF] {
                c.write(INDEX_PORT, i);
                c.write(DATA_PORT, v);
                c.read(DATA_PORT);
            }
        }
    }
}
