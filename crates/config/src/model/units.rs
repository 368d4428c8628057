//! Small value types shared by every syntax: memory sizes and UUIDs.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A memory size, held in KiB (the unit libvirt counts in; xl and xend count MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemSize {
    kib: u64,
}

impl MemSize {
    pub const fn from_kib(kib: u64) -> Self {
        MemSize { kib }
    }

    /// `None` when the size does not fit in 64 bits of KiB.
    pub fn from_mib(mib: u64) -> Option<Self> {
        mib.checked_mul(1024).map(MemSize::from_kib)
    }

    pub const fn kib(self) -> u64 {
        self.kib
    }

    /// The size in MiB, rounded up (xl and xend count whole MiB).
    pub const fn mib_ceil(self) -> u64 {
        self.kib.div_ceil(1024)
    }

    pub const fn is_whole_mib(self) -> bool {
        self.kib % 1024 == 0
    }

    pub fn bytes(self) -> Option<u64> {
        self.kib.checked_mul(1024)
    }

    /// Parse a number with an optional unit suffix: `512` (MiB when `bare_unit` is `Mib`),
    /// `512M`, `512MiB`, `1G`, `540672KiB`, `1048576k`, `2T`, `4096b`. Binary multiples;
    /// libvirt's decimal `KB`/`MB`/`GB`/`TB` are 1000-based. A size that is not a whole
    /// number of KiB is rounded up, as libvirt does.
    pub fn parse_with_default(text: &str, bare_unit: Unit) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(format!("`{text}` is not a size (expected e.g. 512MiB)"));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{text}` is too large a size"))?;
        let unit = match unit.trim() {
            "" => bare_unit,
            u => Unit::parse(u).ok_or_else(|| {
                format!("`{u}` is not a memory unit (use KiB, MiB, GiB, TiB or b)")
            })?,
        };
        unit.to_memsize(n)
            .ok_or_else(|| format!("`{text}` is too large a size"))
    }
}

/// A memory unit as libvirt names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Kib,
    Mib,
    Gib,
    Tib,
    Kb,
    Mb,
    Gb,
    Tb,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "b" | "B" | "bytes" => Unit::Bytes,
            "k" | "K" | "KiB" | "kib" => Unit::Kib,
            "m" | "M" | "MiB" | "mib" => Unit::Mib,
            "g" | "G" | "GiB" | "gib" => Unit::Gib,
            "t" | "T" | "TiB" | "tib" => Unit::Tib,
            "KB" | "kB" => Unit::Kb,
            "MB" => Unit::Mb,
            "GB" => Unit::Gb,
            "TB" => Unit::Tb,
            _ => return None,
        })
    }

    fn to_memsize(self, n: u64) -> Option<MemSize> {
        let bytes_to_kib = |b: u64| b.div_ceil(1024);
        let kib = match self {
            Unit::Bytes => bytes_to_kib(n),
            Unit::Kib => n,
            Unit::Mib => n.checked_mul(1 << 10)?,
            Unit::Gib => n.checked_mul(1 << 20)?,
            Unit::Tib => n.checked_mul(1 << 30)?,
            Unit::Kb => bytes_to_kib(n.checked_mul(1000)?),
            Unit::Mb => bytes_to_kib(n.checked_mul(1_000_000)?),
            Unit::Gb => bytes_to_kib(n.checked_mul(1_000_000_000)?),
            Unit::Tb => bytes_to_kib(n.checked_mul(1_000_000_000_000)?),
        };
        Some(MemSize::from_kib(kib))
    }
}

impl fmt::Display for MemSize {
    /// The largest binary unit that expresses the size exactly: `2GiB`, `519MiB`, `3KiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.kib;
        if k != 0 && k % (1 << 30) == 0 {
            write!(f, "{}TiB", k >> 30)
        } else if k != 0 && k % (1 << 20) == 0 {
            write!(f, "{}GiB", k >> 20)
        } else if k % (1 << 10) == 0 {
            write!(f, "{}MiB", k >> 10)
        } else {
            write!(f, "{k}KiB")
        }
    }
}

impl Serialize for MemSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MemSize {
    /// A string with a unit (`"512MiB"`), or a bare integer counted in MiB as in xl.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MemSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"512MiB\" or a number of MiB")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MemSize, E> {
                MemSize::from_mib(v).ok_or_else(|| E::custom("size too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MemSize, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MemSize, E> {
                MemSize::parse_with_default(v, Unit::Mib).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A domain UUID. Accepts the dashed form and xend's 32 hex digits; prints the dashed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    pub fn parse(s: &str) -> Option<Uuid> {
        let hex: Vec<u8> = s.trim().bytes().filter(|&b| b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Uuid::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a UUID (expected 32 hex digits, dashes optional)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        let p = |s| MemSize::parse_with_default(s, Unit::Kib).map(MemSize::kib);
        assert_eq!(p("540672"), Ok(540672));
        assert_eq!(p("512MiB"), Ok(512 * 1024));
        assert_eq!(p("512 M"), Ok(512 * 1024));
        assert_eq!(p("2G"), Ok(2 << 20));
        assert_eq!(p("1T"), Ok(1 << 30));
        assert_eq!(p("1KB"), Ok(1)); // 1000 bytes rounds up to 1 KiB
        assert_eq!(p("2048b"), Ok(2));
        assert!(p("").is_err());
        assert!(p("12 parsecs").is_err());
        assert!(p("99999999999999999999").is_err());
        assert!(p("99999999999999999T").is_err());
    }

    #[test]
    fn sizes_print_in_largest_exact_unit() {
        assert_eq!(MemSize::from_kib(540672).to_string(), "528MiB");
        assert_eq!(MemSize::from_kib(2 << 20).to_string(), "2GiB");
        assert_eq!(MemSize::from_kib(1025).to_string(), "1025KiB");
        assert_eq!(MemSize::from_kib(0).to_string(), "0MiB");
        assert_eq!(MemSize::from_kib(1025).mib_ceil(), 2);
    }

    #[test]
    fn uuids_in_both_spellings() {
        let a = Uuid::parse("596a5d2171f48fb2e068e2386a5c413e");
        let b = Uuid::parse("596a5d21-71f4-8fb2-e068-e2386a5c413e");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(
            a.map(|u| u.to_string()).as_deref(),
            Some("596a5d21-71f4-8fb2-e068-e2386a5c413e")
        );
        assert!(Uuid::parse("xyz").is_none());
        assert!(Uuid::parse("596a5d2171f48fb2e068e2386a5c413g").is_none());
        assert!(Uuid::parse("ééééééééééééééééé").is_none());
    }
}
