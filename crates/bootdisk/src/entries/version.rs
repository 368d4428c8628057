//! Version ordering for sorting entries the way systemd-boot does (the UAPI group's
//! version format specification, close to `strverscmp`): runs of digits compare as numbers,
//! other characters as text, '~' sorts before anything, '-' and '^' separate.

use std::cmp::Ordering;

/// Compares two version strings (e.g. "6.1.0-10-amd64" < "6.1.0-9-amd64" is false).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        // Skip separators that are neither alphanumeric nor '~'.
        let skip = |s: &[u8]| {
            s.iter()
                .take_while(|c| !c.is_ascii_alphanumeric() && **c != b'~')
                .count()
        };
        a = &a[skip(a)..];
        b = &b[skip(b)..];
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (da, db) = (digits(a), digits(b));
        let ord = if da > 0 && db > 0 {
            let na = trim_zeros(&a[..da]);
            let nb = trim_zeros(&b[..db]);
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb))
        } else if da > 0 || db > 0 {
            // A number sorts after letters ("1.0a" < "1.0.1").
            if da > 0 {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        } else {
            let alpha = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let (la, lb) = (alpha(a).max(1), alpha(b).max(1));
            let ord = a[..la].cmp(&b[..lb]);
            a = &a[la..];
            b = &b[lb..];
            if ord != Ordering::Equal {
                return ord;
            }
            continue;
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[da..];
        b = &b[db..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::*;

    #[test]
    fn orders_kernel_versions() {
        assert_eq!(compare("6.1.0-10-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(compare("5.10", "5.10"), Equal);
        assert_eq!(compare("1.0~rc1", "1.0"), Less);
        assert_eq!(compare("1.0a", "1.0.1"), Less);
        assert_eq!(compare("007", "7"), Equal);
    }
}
