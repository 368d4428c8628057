//! LZO in the lzop framing (what `CONFIG_KERNEL_LZO` emits: `lzop -9`): a header (versions,
//! method, flags, mode, mtime, name, header checksum, optional filter and extra field), then
//! blocks of `u32 BE dst_len`, `u32 BE src_len`, the checksums the flags ask for and the LZO1X
//! data (stored as is when `src_len == dst_len`), ended by a `dst_len` of 0.
//!
//! The layout follows lzop 1.04's `p_header()` and `lzo_decompress()`; every checksum the
//! flags announce is verified, and the lzop "filter" (a delta transform) is undone.

use super::{Limit, Sink, StreamParams, check_tail, corrupt, loaded, lzo1x};
use crate::loader::{LoadContext, Loaded, Loader};
use crate::{Format, FormatError, read};
use bytes::Bytes;
use serde::Serialize;

const MAGIC: [u8; 9] = [0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];

const F_ADLER32_D: u32 = 0x0000_0001;
const F_ADLER32_C: u32 = 0x0000_0002;
const F_H_EXTRA_FIELD: u32 = 0x0000_0040;
const F_CRC32_D: u32 = 0x0000_0100;
const F_CRC32_C: u32 = 0x0000_0200;
const F_MULTIPART: u32 = 0x0000_0400;
const F_H_FILTER: u32 = 0x0000_0800;
const F_H_CRC32: u32 = 0x0000_1000;
/// Bits lzop has never defined (between its flag, character-set and OS fields).
const F_RESERVED: u32 = 0x000f_c000;

/// lzop refuses blocks above 64 MiB.
const MAX_BLOCK: u32 = 64 << 20;
/// LZO1X cannot expand much more than 255:1.
const MAX_RATIO: usize = 256;

/// What an lzop header says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LzoParams {
    /// Version of the lzop that wrote the file ("1.04").
    pub lzop_version: String,
    /// Version of the LZO library it used ("2.10").
    pub lzo_version: String,
    /// "lzo1x_1", "lzo1x_1_15" or "lzo1x_999" (`lzop -7..-9`, the kernel's).
    pub method: &'static str,
    /// Compression level, when the header records it (lzop ≥ 0.94).
    pub level: Option<u8>,
    /// The file name stored in the header, if any.
    pub original_name: Option<String>,
    /// Modification time stored in the header (Unix seconds); `None` for 0.
    pub mtime: Option<u64>,
    /// Checksums carried per block ("adler32_d", "crc32_c"...; `_d` over the decompressed
    /// data, `_c` over the compressed data), all verified.
    pub checksums: Vec<&'static str>,
    /// The delta filter applied before compression (1..16 bytes), if any.
    pub filter: Option<u32>,
    /// Blocks in the stream.
    pub blocks: u64,
    /// Largest decompressed block (lzop's default block size is 256 KiB).
    pub block_max_size: u32,
}

/// Loader for lzop files.
pub struct LzoLoader;

impl Loader for LzoLoader {
    fn name(&self) -> &'static str {
        "lzo"
    }

    fn probe(&self, data: &[u8]) -> Option<Format> {
        (data.len() > MAGIC.len() && data[..MAGIC.len()] == MAGIC).then_some(Format::Lzo)
    }

    fn load(&self, data: &Bytes, ctx: &LoadContext) -> Result<Loaded, FormatError> {
        let (mut params, flags, mut pos) = parse_header(data)?;
        let limit = Limit::new(Format::Lzo, ctx);
        let mut sink = Sink::new(limit, limit.trailer_hint(data, MAX_RATIO))?;
        loop {
            let block_start = pos;
            let dst_len = read::be32(data, pos, "lzop block uncompressed size")?;
            pos += 4;
            if dst_len == 0 {
                break;
            }
            if dst_len == u32::MAX {
                return Err(FormatError::Invalid(
                    "this is a split (multi-volume) lzop file, which lzop itself cannot decompress"
                        .into(),
                ));
            }
            if dst_len > MAX_BLOCK {
                return Err(FormatError::Field {
                    field: "lzop block uncompressed size",
                    offset: block_start,
                    value: u64::from(dst_len),
                    limit: format!("exceeds lzop's maximum block size {MAX_BLOCK}"),
                });
            }
            let src_len = read::be32(data, pos, "lzop block compressed size")?;
            if src_len == 0 || src_len > dst_len {
                return Err(FormatError::Field {
                    field: "lzop block compressed size",
                    offset: pos,
                    value: u64::from(src_len),
                    limit: format!("is 0 or exceeds the block's uncompressed size {dst_len}"),
                });
            }
            pos += 4;
            let compressed = src_len < dst_len;
            let mut field =
                |present: bool, what: &'static str| -> Result<Option<u32>, FormatError> {
                    if !present {
                        return Ok(None);
                    }
                    let v = read::be32(data, pos, what)?;
                    pos += 4;
                    Ok(Some(v))
                };
            let d_adler = field(
                flags & F_ADLER32_D != 0,
                "lzop block adler32 (uncompressed)",
            )?;
            let d_crc = field(flags & F_CRC32_D != 0, "lzop block crc32 (uncompressed)")?;
            // A stored block's "compressed" checksums are its uncompressed ones: not repeated.
            let c_adler = field(
                compressed && flags & F_ADLER32_C != 0,
                "lzop block adler32 (compressed)",
            )?;
            let c_crc = field(
                compressed && flags & F_CRC32_C != 0,
                "lzop block crc32 (compressed)",
            )?;
            let block = read::slice(data, pos, u64::from(src_len), "lzop block data")?;
            let data_start = pos;
            pos += u64::from(src_len);

            verify(
                c_adler,
                || adler2::adler32_slice(block),
                "adler32 of the compressed",
                data_start,
            )?;
            verify(
                c_crc,
                || crc32fast::hash(block),
                "crc32 of the compressed",
                data_start,
            )?;

            let dst_len = dst_len as usize;
            sink.reserve(dst_len)?;
            let at = sink.pos();
            let out = &mut sink.buf()[at..at + dst_len];
            if compressed {
                let n = lzo1x::decompress(block, out).map_err(|e| {
                    corrupt(
                        Format::Lzo,
                        Some(data_start + e.offset as u64),
                        e.to_string(),
                    )
                })?;
                if n != dst_len {
                    return Err(corrupt(
                        Format::Lzo,
                        Some(block_start),
                        format!("block decompressed to {n} bytes, its header says {dst_len}"),
                    ));
                }
            } else {
                out.copy_from_slice(block);
            }
            if let Some(n) = params.filter {
                unfilter(out, n as usize);
            }
            verify(
                d_adler,
                || adler2::adler32_slice(out),
                "adler32 of the uncompressed",
                data_start,
            )?;
            verify(
                d_crc,
                || crc32fast::hash(out),
                "crc32 of the uncompressed",
                data_start,
            )?;
            sink.advance(dst_len);
            params.blocks += 1;
            params.block_max_size = params.block_max_size.max(dst_len as u32);
        }
        let end = usize::try_from(pos).unwrap_or(usize::MAX);
        let out = sink.finish()?;
        let tail = check_tail(Format::Lzo, data, end, out.len() as u64)?;
        Ok(loaded(
            Format::Lzo,
            end,
            out,
            tail,
            StreamParams::Lzo(params),
        ))
    }
}

fn verify(
    expected: Option<u32>,
    actual: impl FnOnce() -> u32,
    what: &str,
    offset: u64,
) -> Result<(), FormatError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let actual = actual();
    if actual == expected {
        Ok(())
    } else {
        Err(corrupt(
            Format::Lzo,
            Some(offset),
            format!("block {what} data is {actual:#010x}, the header says {expected:#010x}"),
        ))
    }
}

/// Undoes lzop's delta filter of `n` bytes: each byte was stored as the difference to the
/// byte `n` before it (lzop's `t_add`/`t_add1`, per block).
fn unfilter(buf: &mut [u8], n: usize) {
    for i in n..buf.len() {
        buf[i] = buf[i].wrapping_add(buf[i - n]);
    }
}

/// lzop and LZO version numbers: 0x1040 is lzop "1.04", 0x0940 "0.94" (BCD digits), but
/// 0x20a0 is LZO "2.10" (the minor number in binary once it passed 9).
fn version_string(v: u16) -> String {
    let minor = (v >> 4) & 0xff;
    if minor >> 4 <= 9 && minor & 0xf <= 9 {
        format!("{:x}.{minor:02x}", v >> 12)
    } else {
        format!("{:x}.{minor:02}", v >> 12)
    }
}

/// Parses the lzop header; returns the facts, the flags and the offset of the first block.
fn parse_header(data: &[u8]) -> Result<(LzoParams, u32, u64), FormatError> {
    let magic = read::array::<9>(data, 0, "lzop magic")?;
    if magic != MAGIC {
        return Err(FormatError::BadMagic {
            what: "lzop header",
            offset: 0,
            expected: "89 4c 5a 4f 00 0d 0a 1a 0a".into(),
            found: read::hex_prefix(data, 0),
        });
    }
    let mut pos = 9u64;
    let version = read::be16(data, pos, "lzop version")?;
    if version < 0x0900 {
        return Err(FormatError::Field {
            field: "lzop version",
            offset: pos,
            value: u64::from(version),
            limit: "is older than 0.90, the oldest lzop format".into(),
        });
    }
    let lib_version = read::be16(data, pos + 2, "lzop LZO library version")?;
    pos += 4;
    if version >= 0x0940 {
        read::be16(data, pos, "lzop version needed to extract")?;
        pos += 2;
    }
    let method_at = pos;
    let method = read::u8_at(data, pos, "lzop method")?;
    pos += 1;
    let method = match method {
        1 => "lzo1x_1",
        2 => "lzo1x_1_15",
        3 => "lzo1x_999",
        other => {
            return Err(FormatError::Field {
                field: "lzop method",
                offset: method_at,
                value: u64::from(other),
                limit: "is not an LZO1X method (1, 2 or 3)".into(),
            });
        }
    };
    let level = if version >= 0x0940 {
        let l = read::u8_at(data, pos, "lzop level")?;
        pos += 1;
        Some(l)
    } else {
        None
    };
    let flags_at = pos;
    let flags = read::be32(data, pos, "lzop flags")?;
    pos += 4;
    if flags & (F_RESERVED | F_MULTIPART) != 0 {
        return Err(FormatError::Field {
            field: "lzop flags",
            offset: flags_at,
            value: u64::from(flags),
            limit: "has reserved or multipart bits set".into(),
        });
    }
    // lzop takes a stored block's compressed-data checksum from its uncompressed-data one,
    // so it refuses (asserts on) a compressed-data checksum without the other.
    if (flags & F_ADLER32_C != 0 && flags & F_ADLER32_D == 0)
        || (flags & F_CRC32_C != 0 && flags & F_CRC32_D == 0)
    {
        return Err(FormatError::Field {
            field: "lzop flags",
            offset: flags_at,
            value: u64::from(flags),
            limit: "asks for a compressed-data checksum without the uncompressed-data one, which lzop refuses".into(),
        });
    }
    let filter = if flags & F_H_FILTER != 0 {
        let f = read::be32(data, pos, "lzop filter")?;
        if !(1..=16).contains(&f) {
            return Err(FormatError::Field {
                field: "lzop filter",
                offset: pos,
                value: u64::from(f),
                limit: "is not a delta filter of 1..16 bytes".into(),
            });
        }
        pos += 4;
        Some(f)
    } else {
        None
    };
    pos += 4; // mode
    let mtime_low = read::be32(data, pos, "lzop mtime")?;
    pos += 4;
    let mtime_high = if version >= 0x0940 {
        let h = read::be32(data, pos, "lzop mtime (high)")?;
        pos += 4;
        h
    } else {
        0
    };
    let name_len = read::u8_at(data, pos, "lzop name length")?;
    let name = read::slice(data, pos + 1, u64::from(name_len), "lzop name")?;
    pos += 1 + u64::from(name_len);
    let checksummed = read::slice(data, 9, pos - 9, "lzop header")?;
    let stored = read::be32(data, pos, "lzop header checksum")?;
    let actual = if flags & F_H_CRC32 != 0 {
        crc32fast::hash(checksummed)
    } else {
        adler2::adler32_slice(checksummed)
    };
    if stored != actual {
        return Err(corrupt(
            Format::Lzo,
            Some(pos),
            format!("header checksum {stored:#010x} does not match {actual:#010x}"),
        ));
    }
    pos += 4;
    if flags & F_H_EXTRA_FIELD != 0 {
        let len = read::be32(data, pos, "lzop extra field length")?;
        read::slice(data, pos + 4, u64::from(len) + 4, "lzop extra field")?;
        pos += 4 + u64::from(len) + 4;
    }
    let mtime = (u64::from(mtime_high) << 32) | u64::from(mtime_low);
    let mut checksums = Vec::new();
    for (bit, name) in [
        (F_ADLER32_D, "adler32_d"),
        (F_ADLER32_C, "adler32_c"),
        (F_CRC32_D, "crc32_d"),
        (F_CRC32_C, "crc32_c"),
    ] {
        if flags & bit != 0 {
            checksums.push(name);
        }
    }
    let params = LzoParams {
        lzop_version: version_string(version),
        lzo_version: version_string(lib_version),
        method,
        level,
        original_name: (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned()),
        mtime: (mtime != 0).then_some(mtime),
        checksums,
        filter,
        blocks: 0,
        block_max_size: 0,
    };
    Ok((params, flags, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_string(0x1040), "1.04");
        assert_eq!(version_string(0x20a0), "2.10");
        assert_eq!(version_string(0x0940), "0.94");
    }

    #[test]
    fn unfilter_is_lzop_t_add() {
        // t_sub(n) on compress: each byte minus the byte n before it (original values).
        let original: Vec<u8> = (0..100u32).map(|i| (i * i % 251) as u8).collect();
        for n in 1..=16 {
            let mut filtered = original.clone();
            for i in (n..filtered.len()).rev() {
                filtered[i] = filtered[i].wrapping_sub(original[i - n]);
            }
            unfilter(&mut filtered, n);
            assert_eq!(filtered, original, "n = {n}");
        }
    }
}
