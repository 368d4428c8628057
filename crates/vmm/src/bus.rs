//! The two buses a vCPU exit lands on: port I/O and MMIO. Each maps non-overlapping
//! address ranges to the device that decodes them; an access is handed to that device
//! with its offset into the range. What nothing decodes is the caller's to count.
//!
//! Modelled on Firecracker's `vmm::devices::Bus`, reduced to what a VM built once needs:
//! devices are registered while the VM is built and never move.

use crate::Outcome;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the vCPU does after an access.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop(Outcome),
}

/// A device on a bus. Accesses come from vCPU threads, hence `&self` and `Sync`: a device
/// keeps its own state behind a lock.
pub trait BusDevice: Send + Sync {
    /// Fills `data` (1 to 8 bytes) for a read at `offset` into the device's range.
    fn read(&self, offset: u64, data: &mut [u8]);
    /// Handles a write of `data` at `offset`; the device can end the run (reset, power-off,
    /// debug exit).
    fn write(&self, offset: u64, data: &[u8]) -> Flow;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("{name} at {base:#x}+{len:#x} overlaps {other} at {other_base:#x}+{other_len:#x}")]
    Overlap {
        name: &'static str,
        base: u64,
        len: u64,
        other: &'static str,
        other_base: u64,
        other_len: u64,
    },
    #[error("{name}: an empty or wrapping range {base:#x}+{len:#x}")]
    BadRange {
        name: &'static str,
        base: u64,
        len: u64,
    },
}

struct Entry {
    len: u64,
    name: &'static str,
    device: Arc<dyn BusDevice>,
}

/// Address ranges to devices.
#[derive(Default)]
pub struct Bus {
    ranges: BTreeMap<u64, Entry>,
}

impl Bus {
    /// Registers `device` for `base..base + len`.
    pub fn insert(
        &mut self,
        name: &'static str,
        base: u64,
        len: u64,
        device: Arc<dyn BusDevice>,
    ) -> Result<(), BusError> {
        let end = match base.checked_add(len) {
            Some(end) if len > 0 => end,
            _ => return Err(BusError::BadRange { name, base, len }),
        };
        // Only the nearest range below `end` can overlap: ranges never overlap each other.
        if let Some((&other_base, other)) = self.ranges.range(..end).next_back()
            && other_base + other.len > base
        {
            return Err(BusError::Overlap {
                name,
                base,
                len,
                other: other.name,
                other_base,
                other_len: other.len,
            });
        }
        self.ranges.insert(base, Entry { len, name, device });
        Ok(())
    }

    /// The device decoding `addr`, and the offset into its range.
    pub fn find(&self, addr: u64) -> Option<(&dyn BusDevice, u64)> {
        let (&base, entry) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset < entry.len).then_some((entry.device.as_ref(), offset))
    }

    /// The registered ranges, in address order: (name, base, length).
    pub fn ranges(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        self.ranges.iter().map(|(&b, e)| (e.name, b, e.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, Vec<u8>)>>);

    impl BusDevice for Recorder {
        fn read(&self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&self, offset: u64, data: &[u8]) -> Flow {
            self.0.lock().unwrap().push((offset, data.to_vec()));
            Flow::Continue
        }
    }

    #[test]
    fn finds_devices_by_range_and_offset() {
        let mut bus = Bus::default();
        let a = Arc::new(Recorder::default());
        bus.insert("a", 0x3F8, 8, a.clone()).unwrap();
        bus.insert("b", 0x400, 2, Arc::new(Recorder::default()))
            .unwrap();
        let (dev, off) = bus.find(0x3FA).unwrap();
        assert_eq!(off, 2);
        let mut v = [0u8; 1];
        dev.read(off, &mut v);
        assert_eq!(v, [2]);
        assert_eq!(dev.write(off, &[9]), Flow::Continue);
        assert_eq!(a.0.lock().unwrap().as_slice(), &[(2, vec![9])]);
        assert!(bus.find(0x3F7).is_none());
        assert!(bus.find(0x400).is_some());
        assert!(bus.find(0x402).is_none());
        assert_eq!(bus.ranges().count(), 2);
    }

    #[test]
    fn refuses_overlaps_and_bad_ranges() {
        let mut bus = Bus::default();
        bus.insert("a", 0x100, 0x10, Arc::new(Recorder::default()))
            .unwrap();
        for (base, len) in [(0xF8, 0x10), (0x108, 1), (0x100, 0x100), (0x80, 0x200)] {
            let err = bus
                .insert("b", base, len, Arc::new(Recorder::default()))
                .unwrap_err();
            assert!(matches!(err, BusError::Overlap { other: "a", .. }), "{err}");
        }
        bus.insert("c", 0x110, 1, Arc::new(Recorder::default()))
            .unwrap();
        bus.insert("d", 0xF0, 0x10, Arc::new(Recorder::default()))
            .unwrap();
        assert!(matches!(
            bus.insert("e", u64::MAX, 2, Arc::new(Recorder::default())),
            Err(BusError::BadRange { .. })
        ));
        assert!(matches!(
            bus.insert("e", 0x1000, 0, Arc::new(Recorder::default())),
            Err(BusError::BadRange { .. })
        ));
    }
}
