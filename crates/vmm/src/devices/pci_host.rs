//! A PCI host bridge alone on bus 0, through configuration mechanism #1 (ports 0xCF8 and
//! 0xCFC-0xCFF).
//!
//! domboot's devices are not on PCI, but Linux looks for PCI configuration space at boot
//! and, finding none, logs "PCI: Fatal: No config space access function found". Type-1
//! access passes Linux's sanity check only when bus 0 holds a host bridge (or VGA), so
//! that is what answers: 00:00.0, a host bridge with no BARs; every other function reads
//! as absent (all ones). The same registers are where PCI devices will appear later.

pub const ADDRESS_PORT: u16 = 0xCF8;
pub const DATA_PORTS: std::ops::RangeInclusive<u16> = 0xCFC..=0xCFF;

/// Red Hat, Inc. (the vendor QEMU's own generic host bridges use) and its "QEMU PCIe host
/// bridge" device ID: a host bridge Linux has no quirks for.
const VENDOR_ID: u32 = 0x1B36;
const DEVICE_ID: u32 = 0x0008;
/// Class 06 (bridge), subclass 00 (host), interface 00.
const CLASS_HOST_BRIDGE: u32 = 0x0600_0000;
const ENABLE: u32 = 1 << 31;

/// Device state (serialisable: one register).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciHost {
    address: u32,
}

impl PciHost {
    pub fn contains(port: u16) -> bool {
        (ADDRESS_PORT..ADDRESS_PORT + 4).contains(&port) || DATA_PORTS.contains(&port)
    }

    pub fn read(&self, port: u16, data: &mut [u8]) {
        let value = if (ADDRESS_PORT..ADDRESS_PORT + 4).contains(&port) {
            // Only whole-dword access to 0xCF8 is the address register; byte access to
            // 0xCF9 is the reset control register, handled before this device.
            if port == ADDRESS_PORT && data.len() == 4 {
                self.address
            } else {
                u32::MAX
            }
        } else {
            self.config_dword() >> (8 * u32::from(port - DATA_PORTS.start()))
        };
        for (i, b) in data.iter_mut().enumerate() {
            *b = (value >> (8 * i)) as u8;
        }
    }

    pub fn write(&mut self, port: u16, data: &[u8]) {
        if port == ADDRESS_PORT && data.len() == 4 {
            self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        }
        // Writes to configuration space are ignored: the host bridge has nothing to set.
    }

    /// The dword the address register selects.
    fn config_dword(&self) -> u32 {
        if self.address & ENABLE == 0 {
            return u32::MAX;
        }
        let bus = (self.address >> 16) & 0xFF;
        let devfn = (self.address >> 8) & 0xFF;
        let offset = self.address & 0xFC;
        if bus != 0 || devfn != 0 {
            return u32::MAX;
        }
        match offset {
            0x00 => (DEVICE_ID << 16) | VENDOR_ID,
            0x08 => CLASS_HOST_BRIDGE,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(h: &mut PciHost, devfn: u32, offset: u32) -> u32 {
        h.write(
            ADDRESS_PORT,
            &(ENABLE | (devfn << 8) | offset).to_le_bytes(),
        );
        let mut d = [0u8; 4];
        h.read(0xCFC, &mut d);
        u32::from_le_bytes(d)
    }

    #[test]
    fn one_host_bridge_on_bus_zero() {
        let mut h = PciHost::default();
        assert_eq!(config(&mut h, 0, 0), 0x0008_1B36);
        assert_eq!(config(&mut h, 0, 8) >> 8, 0x06_0000);
        assert_eq!(config(&mut h, 1 << 3, 0), u32::MAX, "device 1 is absent");
        let mut w = [0u8; 2];
        h.write(ADDRESS_PORT, &(ENABLE | 0x08).to_le_bytes());
        h.read(0xCFE, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x0600);
        let mut a = [0u8; 4];
        h.read(ADDRESS_PORT, &mut a);
        assert_eq!(
            u32::from_le_bytes(a),
            ENABLE | 0x08,
            "the address reads back"
        );
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let mut h = PciHost::default();
        for port in 0xCF8..=0xCFFu16 {
            for len in 1..=4 {
                let mut d = vec![0u8; len];
                h.write(port, &d.clone());
                h.read(port, &mut d);
            }
        }
    }
}
