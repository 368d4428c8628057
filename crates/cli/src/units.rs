//! Sizes on the command line: `4096`, `0x1000`, `64K`, `512M`, `1.5G`, `1GiB`.

/// Parses a size with an optional binary suffix (K, M, G, T; `iB`/`B` accepted); a bare
/// number is bytes. Decimals need a suffix (`1.5G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse(text, 0)
}

/// A RAM size: as [`parse_size`], but a bare number is MiB, as in QEMU's `-m 512` and
/// xl's `memory = 512`. Hex (`0x...`) stays bytes.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    parse(text, 20)
}

/// Guest RAM for `--memory`: [`parse_memory`] within the builder's bounds, refused in the
/// units the user typed (the builder's own message speaks bytes).
pub fn parse_guest_memory(text: &str) -> Result<u64, String> {
    use domboot_builder::memory::{MAX_MEMORY, MIN_MEMORY};
    let bytes = parse_memory(text)?;
    let shown = if text.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        format!("{} MiB", text.trim())
    } else {
        text.trim().to_string()
    };
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{shown} is below the minimum of {} MiB",
            MIN_MEMORY >> 20
        ));
    }
    if bytes > MAX_MEMORY {
        return Err(format!(
            "{shown} is above the maximum of {} GiB",
            MAX_MEMORY >> 30
        ));
    }
    Ok(bytes)
}

fn parse(text: &str, bare_shift: u32) -> Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let not_a_size = || {
        format!("{text:?} is not a size (examples: 512 (MiB for memory), 64K, 512M, 1.5G, 0x1000)")
    };
    if let Some(hex) = lower.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).map_err(|_| not_a_size());
    }
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, shift) = match stripped.chars().last() {
        Some('k') => (&stripped[..stripped.len() - 1], 10),
        Some('m') => (&stripped[..stripped.len() - 1], 20),
        Some('g') => (&stripped[..stripped.len() - 1], 30),
        Some('t') => (&stripped[..stripped.len() - 1], 40),
        // "12b" is bytes even for memory.
        _ if stripped.len() != lower.len() => (stripped, 0),
        _ => (stripped, bare_shift),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || frac.len() > 9 {
        return Err(not_a_size());
    }
    let too_large = || format!("{text:?} is larger than 16 EiB");
    let whole: u64 = int.parse().map_err(|_| too_large())?;
    let value = whole.checked_mul(1u64 << shift).ok_or_else(too_large)?;
    if frac.is_empty() {
        return Ok(value);
    }
    // frac / 10^len of the unit, exact in u128, rounded down to whole bytes.
    let f: u128 = frac.parse().map_err(|_| not_a_size())?;
    let part = (f << shift) / 10u128.pow(frac.len() as u32);
    if (f << shift) % 10u128.pow(frac.len() as u32) != 0 {
        return Err(format!(
            "{text:?} is not a whole number of bytes (use a smaller unit)"
        ));
    }
    value.checked_add(part as u64).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1.").is_ok());
        assert!(parse_size(".5G").is_err());
        assert!(parse_size("1.0001K").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn memory_is_mib_when_bare() {
        assert_eq!(parse_memory("512"), Ok(512 << 20));
        assert_eq!(parse_memory("1.5"), Ok(3 << 19));
        assert_eq!(parse_memory("1.5G"), Ok(3 << 29));
        assert_eq!(parse_memory("4096b"), Ok(4096));
        assert_eq!(parse_memory("0x1000"), Ok(4096));
        assert_eq!(
            parse_guest_memory("1"),
            Err("1 MiB is below the minimum of 16 MiB".into())
        );
        assert_eq!(
            parse_guest_memory("8m"),
            Err("8m is below the minimum of 16 MiB".into())
        );
        assert_eq!(
            parse_guest_memory("2T"),
            Err("2T is above the maximum of 1024 GiB".into())
        );
        let e = parse_memory("lots").unwrap_err();
        assert!(e.starts_with("\"lots\" is not a size"), "{e}");
    }
}
