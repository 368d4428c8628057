//! A bounds-checked LZO1X decompressor (the block format of `lzop` and of the kernel's
//! `CONFIG_KERNEL_LZO` payload), in safe Rust.
//!
//! It accepts what liblzo2's `lzo1x_decompress_safe` accepts — any LZO1X-1, -1(15) or -999
//! block — and fails with the input offset and reason where that would, never reading or
//! writing outside the given slices.
//!
//! Instruction set (state = literals copied by the previous instruction, 4 = "four or more"):
//!
//! | first byte | meaning |
//! |---|---|
//! | `0000LLLL`, state 0 | literal run of 3 + L bytes (L = 0: 18 + 255·zeros + next byte) |
//! | `0000DDSS`, state 1..3 | 2-byte match, distance 1 + D + 4·H (H: next byte) |
//! | `0000DDSS`, state 4 | 3-byte match, distance 2049 + D + 4·H |
//! | `0001HLLL` | match of 2 + L bytes (L = 0: 9 + ext.), distance 16384 + 16384·H + D (LE16 D≫2); D = H = 0 ends the stream |
//! | `001LLLLL` | match of 2 + L bytes (L = 0: 33 + ext.), distance 1 + (LE16 ≫ 2) |
//! | `01LDDDSS`, `1LLDDDSS` | match of 1 + (byte ≫ 5) bytes, distance 1 + D + 8·H |
//!
//! Every match carries S (0..3) literals that follow it.

use std::fmt;

/// Why an LZO1X block could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ends inside an instruction or a literal run (`LZO_E_INPUT_OVERRUN`).
    InputOverrun,
    /// The output would exceed the buffer (`LZO_E_OUTPUT_OVERRUN`).
    OutputOverrun,
    /// A match refers to before the start of the output (`LZO_E_LOOKBEHIND_OVERRUN`).
    LookbehindOverrun,
    /// Bytes follow the end-of-stream marker (`LZO_E_INPUT_NOT_CONSUMED`).
    InputNotConsumed,
    /// A malformed end-of-stream marker (`LZO_E_ERROR`).
    BadEndMarker,
}

/// An LZO1X decoding error and the input offset of the instruction that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// Offset in the compressed input.
    pub offset: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::InputOverrun => "the input ends inside an instruction",
            ErrorKind::OutputOverrun => "the output would exceed the declared size",
            ErrorKind::LookbehindOverrun => "a match refers to before the start of the output",
            ErrorKind::InputNotConsumed => "data follows the end-of-stream marker",
            ErrorKind::BadEndMarker => "malformed end-of-stream marker",
        };
        write!(
            f,
            "{what} (LZO1X instruction at block offset {:#x})",
            self.offset
        )
    }
}

impl std::error::Error for Error {}

/// Decompresses one LZO1X block from `src` into `dst`, which must be large enough for all of
/// it; returns the number of bytes written. The block must end with its end-of-stream marker
/// exactly at the end of `src`.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
    Decoder {
        src,
        dst,
        ip: 0,
        op: 0,
    }
    .run()
}

struct Decoder<'a, 'b> {
    src: &'a [u8],
    dst: &'b mut [u8],
    ip: usize,
    op: usize,
}

impl Decoder<'_, '_> {
    fn run(mut self) -> Result<usize, Error> {
        let first = self.byte(0)?;
        // Literals copied by the previous instruction (4: four or more).
        let mut state = 0usize;
        if first > 17 {
            // A leading literal run of `first - 17` bytes.
            self.ip = 1;
            let n = usize::from(first - 17);
            self.literals(n, 0)?;
            state = n.min(4);
        }
        loop {
            let at = self.ip;
            let inst = self.byte(at)?;
            self.ip += 1;
            let (len, dist, next);
            if inst >= 64 {
                let h = self.byte(at)?;
                self.ip += 1;
                len = usize::from(inst >> 5) + 1;
                dist = 1 + usize::from((inst >> 2) & 7) + (usize::from(h) << 3);
                next = usize::from(inst & 3);
            } else if inst >= 32 {
                let mut l = usize::from(inst & 31);
                if l == 0 {
                    l = self.long_length(at)?.saturating_add(31);
                }
                len = l.saturating_add(2);
                let d = self.le16(at)?;
                dist = 1 + usize::from(d >> 2);
                next = usize::from(d & 3);
            } else if inst >= 16 {
                let mut l = usize::from(inst & 7);
                if l == 0 {
                    l = self.long_length(at)?.saturating_add(7);
                }
                len = l.saturating_add(2);
                let d = self.le16(at)?;
                let far = (usize::from(inst & 8) << 11) + usize::from(d >> 2);
                if far == 0 {
                    // End of stream: 0x11 0x00 0x00.
                    if len != 3 {
                        return Err(err(ErrorKind::BadEndMarker, at));
                    }
                    if self.ip != self.src.len() {
                        return Err(err(ErrorKind::InputNotConsumed, self.ip));
                    }
                    return Ok(self.op);
                }
                dist = far + 0x4000;
                next = usize::from(d & 3);
            } else if state == 0 {
                // Literal run of 4 or more.
                let mut l = usize::from(inst);
                if l == 0 {
                    l = self.long_length(at)?.saturating_add(15);
                }
                self.literals(l.saturating_add(3), at)?;
                state = 4;
                continue;
            } else {
                let h = self.byte(at)?;
                self.ip += 1;
                let base = if state == 4 { 1 + 0x800 } else { 1 };
                len = if state == 4 { 3 } else { 2 };
                dist = base + usize::from(inst >> 2) + (usize::from(h) << 2);
                next = usize::from(inst & 3);
            }
            self.copy_match(dist, len, at)?;
            self.literals(next, at)?;
            state = next;
        }
    }

    /// The input byte at `self.ip`; `at` is the instruction's offset, for the error.
    #[inline(always)]
    fn byte(&self, at: usize) -> Result<u8, Error> {
        self.src
            .get(self.ip)
            .copied()
            .ok_or(err(ErrorKind::InputOverrun, at))
    }

    #[inline(always)]
    fn le16(&mut self, at: usize) -> Result<u16, Error> {
        let b = self
            .src
            .get(self.ip..self.ip + 2)
            .ok_or(err(ErrorKind::InputOverrun, at))?;
        self.ip += 2;
        Ok(u16::from(b[0]) | (u16::from(b[1]) << 8))
    }

    /// The extension of a length field that was 0: 255 per zero byte, plus the first
    /// non-zero byte.
    #[inline(never)]
    fn long_length(&mut self, at: usize) -> Result<usize, Error> {
        let rest = self.src.get(self.ip..).unwrap_or(&[]);
        let zeros = rest.iter().take_while(|&&b| b == 0).count();
        let last = *rest.get(zeros).ok_or(err(ErrorKind::InputOverrun, at))?;
        self.ip += zeros + 1;
        Ok(zeros.saturating_mul(255).saturating_add(usize::from(last)))
    }

    /// Copies `n` literal bytes from the input to the output.
    #[inline(always)]
    fn literals(&mut self, n: usize, at: usize) -> Result<(), Error> {
        let (ip, op) = (self.ip, self.op);
        // Short runs (most of them): one fixed 16-byte copy when both sides have the room.
        if n <= 16 && ip + 16 <= self.src.len() && op + 16 <= self.dst.len() {
            let mut chunk = [0u8; 16];
            chunk.copy_from_slice(&self.src[ip..ip + 16]);
            self.dst[op..op + 16].copy_from_slice(&chunk);
        } else {
            let s = ip
                .checked_add(n)
                .and_then(|end| self.src.get(ip..end))
                .ok_or(err(ErrorKind::InputOverrun, at))?;
            let d = op
                .checked_add(n)
                .and_then(|end| self.dst.get_mut(op..end))
                .ok_or(err(ErrorKind::OutputOverrun, at))?;
            d.copy_from_slice(s);
        }
        self.ip = ip + n;
        self.op = op + n;
        Ok(())
    }

    /// Copies `len` bytes from `dist` bytes back in the output (the ranges may overlap).
    #[inline(always)]
    fn copy_match(&mut self, dist: usize, len: usize, at: usize) -> Result<(), Error> {
        let op = self.op;
        let from = op
            .checked_sub(dist)
            .ok_or(err(ErrorKind::LookbehindOverrun, at))?;
        let end = op
            .checked_add(len)
            .filter(|&e| e <= self.dst.len())
            .ok_or(err(ErrorKind::OutputOverrun, at))?;
        if dist >= 8 && end + 8 <= self.dst.len() {
            // 8 bytes at a time; each read lies entirely in already written output because
            // the distance is at least 8. May write up to 7 bytes past `end`, inside `dst`;
            // later output overwrites them.
            let mut i = 0;
            while i < len {
                let mut chunk = [0u8; 8];
                chunk.copy_from_slice(&self.dst[from + i..from + i + 8]);
                self.dst[op + i..op + i + 8].copy_from_slice(&chunk);
                i += 8;
            }
        } else if dist >= len {
            self.dst.copy_within(from..from + len, op);
        } else if dist == 1 {
            let b = self.dst[from];
            self.dst[op..end].fill(b);
        } else {
            let window = &mut self.dst[from..end];
            for i in dist..window.len() {
                window[i] = window[i - dist];
            }
        }
        self.op = end;
        Ok(())
    }
}

#[inline(always)]
fn err(kind: ErrorKind, offset: usize) -> Error {
    Error { kind, offset }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(src: &[u8], cap: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0; cap];
        let n = decompress(src, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    #[test]
    fn empty_stream() {
        assert_eq!(dec(&[0x11, 0, 0], 0).unwrap(), b"");
    }

    #[test]
    fn leading_literals_then_end() {
        // 18 + 3 = 21 → 4 literals.
        assert_eq!(
            dec(&[21, b'a', b'b', b'c', b'd', 0x11, 0, 0], 4).unwrap(),
            b"abcd"
        );
        assert_eq!(
            dec(&[21, b'a', b'b', b'c', b'd', 0x11, 0, 0], 3)
                .unwrap_err()
                .kind,
            ErrorKind::OutputOverrun
        );
    }

    #[test]
    fn overlapping_match() {
        // "ab" as a leading run of 2 literals, then M2 match len 3+..., dist 2.
        // inst 0b010_000_00 = 64: len (64>>5)+1 = 3, dist 1 + 0 + 8*H; want dist 2 → D=1.
        let src = [19, b'a', b'b', 0b0100_0100, 0, 0x11, 0, 0];
        assert_eq!(dec(&src, 16).unwrap(), b"ababa");
    }

    #[test]
    fn errors() {
        assert_eq!(dec(&[], 4).unwrap_err().kind, ErrorKind::InputOverrun);
        assert_eq!(
            dec(&[0x11, 0], 4).unwrap_err().kind,
            ErrorKind::InputOverrun
        );
        assert_eq!(
            dec(&[0x11, 0, 0, 0], 4).unwrap_err().kind,
            ErrorKind::InputNotConsumed
        );
        assert_eq!(
            dec(&[0x10, 5, 0, 0], 4).unwrap_err().kind,
            ErrorKind::BadEndMarker
        );
        // A match before any output.
        assert_eq!(
            dec(&[0x11, 4, 0, 0x11, 0, 0], 4).unwrap_err().kind,
            ErrorKind::LookbehindOverrun
        );
        // A zero run that never ends.
        assert_eq!(
            dec(&[0, 0, 0], 4).unwrap_err().kind,
            ErrorKind::InputOverrun
        );
    }
}
