//! Bounds-checked little-endian reads. Every parser goes through these, so a short or
//! hostile input becomes a [`FormatError::Truncated`] naming the field, never a panic.

use crate::FormatError;

/// Returns `data[offset..offset + len]`, or an error naming `what`.
pub(crate) fn slice<'a>(
    data: &'a [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], FormatError> {
    let truncated = || FormatError::Truncated {
        what,
        offset,
        need: len,
        have: (data.len() as u64).saturating_sub(offset),
    };
    let start = usize::try_from(offset).map_err(|_| truncated())?;
    let len_usize = usize::try_from(len).map_err(|_| truncated())?;
    let end = start.checked_add(len_usize).ok_or_else(truncated)?;
    data.get(start..end).ok_or_else(truncated)
}

pub(crate) fn array<const N: usize>(
    data: &[u8],
    offset: u64,
    what: &'static str,
) -> Result<[u8; N], FormatError> {
    let s = slice(data, offset, N as u64, what)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

pub(crate) fn u8_at(data: &[u8], offset: u64, what: &'static str) -> Result<u8, FormatError> {
    Ok(array::<1>(data, offset, what)?[0])
}

pub(crate) fn le16(data: &[u8], offset: u64, what: &'static str) -> Result<u16, FormatError> {
    Ok(u16::from_le_bytes(array(data, offset, what)?))
}

pub(crate) fn le32(data: &[u8], offset: u64, what: &'static str) -> Result<u32, FormatError> {
    Ok(u32::from_le_bytes(array(data, offset, what)?))
}

pub(crate) fn le64(data: &[u8], offset: u64, what: &'static str) -> Result<u64, FormatError> {
    Ok(u64::from_le_bytes(array(data, offset, what)?))
}

pub(crate) fn be16(data: &[u8], offset: u64, what: &'static str) -> Result<u16, FormatError> {
    Ok(u16::from_be_bytes(array(data, offset, what)?))
}

pub(crate) fn be32(data: &[u8], offset: u64, what: &'static str) -> Result<u32, FormatError> {
    Ok(u32::from_be_bytes(array(data, offset, what)?))
}

pub(crate) fn be64(data: &[u8], offset: u64, what: &'static str) -> Result<u64, FormatError> {
    Ok(u64::from_be_bytes(array(data, offset, what)?))
}

/// A NUL-terminated string of at most `max` bytes starting at `offset`, lossily decoded.
/// `None` when the offset is outside the data or no terminator is found within `max`.
pub(crate) fn c_string(data: &[u8], offset: u64, max: usize) -> Option<String> {
    let start = usize::try_from(offset).ok()?;
    let rest = data.get(start..)?;
    let window = &rest[..rest.len().min(max)];
    let end = window.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&window[..end]).into_owned())
}

/// Up to 16 bytes at `offset` in hex, for error messages about unknown content.
pub(crate) fn hex_prefix(data: &[u8], offset: usize) -> String {
    let rest = data.get(offset..).unwrap_or(&[]);
    rest.iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let d = [1u8, 2, 3, 4, 5];
        assert_eq!(le16(&d, 0, "x").unwrap(), 0x0201);
        assert_eq!(le32(&d, 1, "x").unwrap(), 0x05040302);
        assert!(matches!(
            le32(&d, 2, "field"),
            Err(FormatError::Truncated {
                what: "field",
                offset: 2,
                need: 4,
                have: 3
            })
        ));
        assert!(slice(&d, u64::MAX, 2, "x").is_err());
        assert!(slice(&d, 4, u64::MAX, "x").is_err());
        assert_eq!(slice(&d, 5, 0, "x").unwrap(), &[] as &[u8]);
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_string(b"ab\0cd", 0, 10).as_deref(), Some("ab"));
        assert_eq!(c_string(b"abcd", 0, 10), None);
        assert_eq!(c_string(b"ab\0", 9, 10), None);
        assert_eq!(c_string(b"abc\0", 0, 2), None);
    }
}
