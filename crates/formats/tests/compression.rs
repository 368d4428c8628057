//! Compressed-stream loaders against real data: the tiny kernels' payloads, streams made by
//! the command-line tools, streams made by the Rust encoders, and damaged streams.
//!
//! Tests that need a command-line tool or the shared kernels skip (with a note on stderr)
//! when those are missing; the project's set-up script installs the tools.

use bytes::Bytes;
use domboot_formats::compression::{self, CompressedInfo, StreamParams};
use domboot_formats::{Details, Format, FormatError, LoadContext, Loaded, Loader};
use proptest::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Helpers

fn ctx(max: u64) -> LoadContext {
    LoadContext {
        max_output: max,
        max_output_reason: "the test's limit",
    }
}

fn loader(format: Format) -> Box<dyn Loader> {
    compression::loaders()
        .into_iter()
        .find(|l| l.name() == format.name())
        .expect("a loader per format")
}

fn load(format: Format, data: &[u8], max: u64) -> Result<Loaded, FormatError> {
    loader(format).load(&Bytes::copy_from_slice(data), &ctx(max))
}

/// `unwrap_err` without printing the (large) decompressed bytes on failure.
trait ExpectErr {
    fn expect_err_short(self) -> FormatError;
}

impl ExpectErr for Result<Loaded, FormatError> {
    fn expect_err_short(self) -> FormatError {
        match self {
            Ok(l) => panic!(
                "expected an error, but {} decoded to {} bytes",
                l.format,
                l.inner.map_or(0, |b| b.len())
            ),
            Err(e) => e,
        }
    }
}

fn info(loaded: &Loaded) -> &CompressedInfo {
    match &loaded.details {
        Details::Compressed(c) => c,
        other => panic!("not a compressed layer: {other:?}"),
    }
}

fn inner(loaded: &Loaded) -> &[u8] {
    loaded.inner.as_deref().expect("decompressed bytes")
}

/// Decompresses with the format's loader after checking that probing picks it.
fn decompress(format: Format, data: &[u8]) -> (Vec<u8>, CompressedInfo) {
    assert_eq!(
        compression::probe(data),
        Some(format),
        "probe of a {format} stream"
    );
    let loaded = load(format, data, 1 << 30).unwrap_or_else(|e| panic!("{format}: {e}"));
    assert_eq!(loaded.format, format);
    (inner(&loaded).to_vec(), info(&loaded).clone())
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("note: `{tool}` is not installed; skipping the part of this test that needs it");
    }
    ok
}

/// Runs `tool args` with `input` on stdin; returns stdout (whatever the exit status: the
/// decompressors complain about the kernel's trailer but still write everything).
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("tool output");
    writer.join().expect("writer thread");
    out.stdout
}

fn kernels_dir() -> PathBuf {
    std::env::var_os("DOMBOOT_KERNELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kernels")
        })
}

/// The payload of `bzImage-x64-pvh-NAME` and the kernel's init_size.
fn kernel_payload(name: &str) -> Option<(Vec<u8>, u64)> {
    let path = kernels_dir().join(format!("bzImage-x64-pvh-{name}"));
    let Ok(image) = std::fs::read(&path) else {
        eprintln!("note: {} is missing; skipping", path.display());
        return None;
    };
    let le32 = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap()) as usize;
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + le32(0x248);
    let payload = image[start..start + le32(0x24c)].to_vec();
    Some((payload, le32(0x260) as u64))
}

/// Deterministic test data that compresses like a kernel does (about 3:1): text-like runs,
/// binary noise and zero fill.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: [&[u8]; 8] = [
        b"kernel ",
        b"boot ",
        b"\x00\x00\x00\x00",
        b"protocol ",
        b"\x48\x89\xe5",
        b"setup ",
        b"domain ",
        b"\xff\xff",
    ];
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let r = next();
        match r % 10 {
            0..=5 => out.extend_from_slice(words[(r >> 8) as usize % words.len()]),
            6 | 7 => out.extend_from_slice(&r.to_le_bytes()),
            8 => out.extend(std::iter::repeat_n(0, (r >> 8) as usize % 300)),
            _ => {
                let back = (r >> 8) as usize % out.len().max(1);
                let n = ((r >> 32) as usize % 64).min(out.len() - back);
                let copy = out[back..back + n].to_vec();
                out.extend_from_slice(&copy);
            }
        }
    }
    out.truncate(len);
    out
}

fn with_trailer(stream: &[u8], size: usize) -> Vec<u8> {
    let mut v = stream.to_vec();
    v.extend_from_slice(&(size as u32).to_le_bytes());
    v
}

/// The command-line compressor invocations used for round trips, per format.
fn cli_streams(data: &[u8]) -> Vec<(Format, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |format: Format, tool: &str, args: &[&str]| {
        if have(tool) {
            out.push((
                format,
                format!("{tool} {}", args.join(" ")),
                pipe(tool, args, data),
            ));
        }
    };
    add(Format::Gzip, "gzip", &["-c", "-9"]);
    add(Format::Gzip, "gzip", &["-c", "-1"]);
    add(Format::Bzip2, "bzip2", &["-c", "-9"]);
    add(Format::Bzip2, "bzip2", &["-c", "-1"]);
    add(Format::Lzma, "lzma", &["-c", "-9"]);
    add(Format::Lzma, "lzma", &["-c", "-1"]);
    add(
        Format::Xz,
        "xz",
        &["-c", "--check=crc32", "--x86", "--lzma2=dict=32MiB"],
    );
    add(Format::Xz, "xz", &["-c", "-6"]);
    add(Format::Xz, "xz", &["-c", "--check=sha256", "-0"]);
    add(Format::Lzo, "lzop", &["-c", "-9"]);
    add(Format::Lzo, "lzop", &["-c", "-1", "--crc32"]);
    add(Format::Lzo, "lzop", &["-c", "-3", "--no-checksum"]);
    add(Format::Lz4, "lz4", &["-c", "-l", "-9"]);
    add(Format::Lz4, "lz4", &["-c"]);
    add(
        Format::Lz4,
        "lz4",
        &["-c", "-BD", "-B4", "-BX", "--content-size"],
    );
    add(Format::Lz4, "lz4", &["-c", "-B5", "--no-frame-crc"]);
    add(Format::Zstd, "zstd", &["-c", "-19"]);
    add(Format::Zstd, "zstd", &["-c", "-1", "--no-check"]);
    out
}

// ---------------------------------------------------------------------------------------------
// The tiny kernels' payloads

#[test]
fn kernel_payloads_decompress_to_elf() {
    let formats = [
        ("gzip", Format::Gzip, "gzip"),
        ("bzip2", Format::Bzip2, "bzip2"),
        ("lzma", Format::Lzma, "lzma"),
        ("xz", Format::Xz, "xz"),
        ("lzo", Format::Lzo, "lzop"),
        ("lz4", Format::Lz4, "lz4"),
        ("zstd", Format::Zstd, "zstd"),
    ];
    for (name, format, tool) in formats {
        let Some((payload, init_size)) = kernel_payload(name) else {
            continue;
        };
        assert_eq!(compression::probe(&payload), Some(format), "{name}");
        let loaded =
            load(format, &payload, 2 * init_size).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = inner(&loaded);
        let info = info(&loaded);
        assert_eq!(&out[..4], b"\x7fELF", "{name}");
        assert_eq!(info.decompressed_size, out.len() as u64);
        if format == Format::Gzip {
            // gzip's own ISIZE ends the payload: the kernel's build appends no trailer.
            assert_eq!(info.trailer, None, "{name}");
            assert_eq!(info.compressed_size, payload.len() as u64, "{name}");
        } else {
            assert_eq!(
                info.trailer,
                Some(out.len() as u32),
                "{name}: the kernel's size trailer"
            );
            assert_eq!(info.compressed_size + 4, payload.len() as u64, "{name}");
        }
        assert!(info.ratio > 1.0);
        if have(tool) {
            let theirs = pipe(tool, &["-dc"], &payload);
            assert!(theirs == out, "{name}: differs from `{tool} -dc`");
        } else {
            assert_ne!(format, Format::Gzip, "gzip is needed for this test");
        }
        // A limit just below the real size is an OutputLimit, not a corrupt stream.
        let err = load(format, &payload, out.len() as u64 - 1).expect_err_short();
        assert!(
            matches!(err, FormatError::OutputLimit { format: f, .. } if f == format),
            "{name}: {err}"
        );
        // ... and exactly the real size is enough.
        load(format, &payload, out.len() as u64).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn kernel_payload_params() {
    if let Some((p, _)) = kernel_payload("xz") {
        let (_, info) = decompress(Format::Xz, &p);
        let StreamParams::Xz(x) = &info.params else {
            panic!()
        };
        assert_eq!(x.check, "crc32");
        assert_eq!(x.filters.last().map(String::as_str), Some("lzma2"));
        assert!(x.dict_size.is_some());
    }
    if let Some((p, _)) = kernel_payload("lz4") {
        let (_, info) = decompress(Format::Lz4, &p);
        let StreamParams::Lz4(l) = &info.params else {
            panic!()
        };
        assert_eq!(l.framing, "legacy");
        assert!(l.blocks >= 1);
    }
    if let Some((p, _)) = kernel_payload("zstd") {
        let (_, info) = decompress(Format::Zstd, &p);
        let StreamParams::Zstd(z) = &info.params else {
            panic!()
        };
        assert!(z.window_size >= 1 << 20);
    }
    if let Some((p, _)) = kernel_payload("lzma") {
        let (_, info) = decompress(Format::Lzma, &p);
        let StreamParams::Lzma(l) = &info.params else {
            panic!()
        };
        assert_eq!((l.lc, l.lp, l.pb), (3, 0, 2));
        assert_eq!(l.declared_size, None);
    }
    if let Some((p, _)) = kernel_payload("lzo") {
        let (_, info) = decompress(Format::Lzo, &p);
        let StreamParams::Lzo(l) = &info.params else {
            panic!()
        };
        assert_eq!(l.method, "lzo1x_999");
        assert!(l.blocks > 1);
    }
    // The JSON the CLI prints: flat snake_case keys.
    if let Some((p, _)) = kernel_payload("gzip") {
        let (_, info) = decompress(Format::Gzip, &p);
        let json = serde_json::to_value(&info).unwrap();
        for key in [
            "compressed_size",
            "decompressed_size",
            "ratio",
            "trailer",
            "padding",
            "os",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
    }
}

#[test]
fn probes_do_not_claim_kernels_or_elf() {
    let dir = kernels_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} is missing; skipping", dir.display());
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("bzImage-") || name.starts_with("vmlinux-") {
            let data = std::fs::read(entry.path()).unwrap();
            assert_eq!(compression::probe(&data), None, "{name}");
        }
    }
    assert_eq!(
        compression::probe(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"),
        None
    );
    assert_eq!(
        compression::probe(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0"),
        None
    );
    assert_eq!(compression::probe(b"070701000000000000"), None);
    assert_eq!(compression::probe(&[]), None);
}

// ---------------------------------------------------------------------------------------------
// Round trips through the command-line tools

#[test]
fn cli_round_trips() {
    let data = sample(700_000, 1);
    for (format, how, stream) in cli_streams(&data) {
        let (out, info) = decompress(format, &stream);
        assert!(out == data, "{how}: output differs");
        assert_eq!(info.trailer, None, "{how}");
        assert_eq!(info.compressed_size, stream.len() as u64, "{how}");
        // With the kernel's trailer, and with padding after it.
        let mut t = with_trailer(&stream, data.len());
        let (out, info) = decompress(format, &t);
        assert!(out == data, "{how} + trailer");
        assert_eq!(info.trailer, Some(data.len() as u32), "{how}");
        t.extend_from_slice(&[0; 13]);
        let (_, info) = decompress(format, &t);
        assert_eq!(
            (info.trailer, info.padding),
            (Some(data.len() as u32), 13),
            "{how}"
        );
        // With padding alone.
        let mut p = stream.clone();
        p.extend_from_slice(&[0; 512]);
        let (out, info) = decompress(format, &p);
        assert!(out == data, "{how} + padding");
        assert_eq!((info.trailer, info.padding), (None, 512), "{how}");
    }
}

#[test]
fn cli_edge_inputs() {
    // Empty input, one byte, and (for lz4 legacy) several 8 MiB chunks.
    for data in [Vec::new(), vec![0x42]] {
        for (format, how, stream) in cli_streams(&data) {
            let (out, _) = decompress(format, &stream);
            assert_eq!(out, data, "{how} of {} bytes", data.len());
        }
    }
    if have("lz4") {
        let data = sample(17 << 20, 7);
        let stream = pipe("lz4", &["-c", "-l", "-1"], &data);
        let stream = with_trailer(&stream, data.len());
        let (out, info) = decompress(Format::Lz4, &stream);
        assert!(out == data);
        let StreamParams::Lz4(l) = &info.params else {
            panic!()
        };
        assert_eq!(l.blocks, 3);
        assert_eq!(info.trailer, Some(data.len() as u32));
    }
    if have("lzop") {
        // lzop stores incompressible blocks as is; a file name and mtime in the header.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.bin");
        let mut noise = vec![0u8; 600_000];
        let mut x = 99u32;
        for b in noise.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 23) as u8;
        }
        std::fs::write(&path, &noise).unwrap();
        let status = Command::new("lzop")
            .arg("-f")
            .arg("-q")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let stream = std::fs::read(dir.path().join("noise.bin.lzo")).unwrap();
        let (out, info) = decompress(Format::Lzo, &stream);
        assert!(out == noise);
        let StreamParams::Lzo(l) = &info.params else {
            panic!()
        };
        assert_eq!(l.original_name.as_deref(), Some("noise.bin"));
        assert!(l.mtime.is_some());
    }
    if have("gzip") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.txt");
        std::fs::write(&path, b"hello, kernel\n").unwrap();
        assert!(Command::new("gzip").arg(&path).status().unwrap().success());
        let stream = std::fs::read(dir.path().join("hello.txt.gz")).unwrap();
        let (out, info) = decompress(Format::Gzip, &stream);
        assert_eq!(out, b"hello, kernel\n");
        let StreamParams::Gzip(g) = &info.params else {
            panic!()
        };
        assert_eq!(g.original_name.as_deref(), Some("hello.txt"));
        assert!(g.mtime.is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged streams

#[test]
fn truncated_streams_fail() {
    let data = sample(300_000, 2);
    for (format, how, stream) in cli_streams(&data) {
        for cut in [stream.len() / 2, stream.len() - 1, 20.min(stream.len() - 1)] {
            let err = load(format, &stream[..cut], 1 << 30).expect_err_short();
            assert!(
                matches!(err, FormatError::Corrupt { format: f, .. } if f == format)
                    || matches!(err, FormatError::Truncated { .. }),
                "{how} cut at {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn flipped_bytes_fail() {
    let data = sample(300_000, 3);
    for (format, how, stream) in cli_streams(&data) {
        let mut bad = stream.clone();
        let at = match (format, how.as_str()) {
            // LZMA has no checksum: break the range coder's first byte, which must be 0.
            (Format::Lzma, _) => 13,
            // LZ4 legacy has no checksum: break the first chunk's size.
            (Format::Lz4, h) if h.contains("-l") => 4,
            // Streams with no checksum at all: skip the middle-of-data flip.
            (_, h) if h.contains("--no-check") || h.contains("--no-frame-crc") => continue,
            _ => stream.len() / 2,
        };
        bad[at] ^= 0x55;
        let err = load(format, &bad, 1 << 30).expect_err_short();
        assert!(
            matches!(err, FormatError::Corrupt { format: f, .. } if f == format)
                || matches!(err, FormatError::Truncated { .. })
                || matches!(err, FormatError::Field { .. }),
            "{how} flipped at {at}: {err:?}"
        );
    }
}

#[test]
fn bombs_hit_the_output_limit() {
    let zeros = vec![0u8; 32 << 20];
    for (format, how, stream) in cli_streams(&zeros) {
        let err = load(format, &stream, 1 << 20).expect_err_short();
        assert!(
            matches!(err, FormatError::OutputLimit { format: f, limit, .. } if f == format && limit == 1 << 20),
            "{how}: {err:?}"
        );
        assert!(err.to_string().contains("the test's limit"));
    }
}

#[test]
fn trailing_garbage_is_rejected() {
    let data = sample(100_000, 4);
    for (format, how, stream) in cli_streams(&data) {
        let end = stream.len() as u64;
        let garbage = |tail: &[u8]| {
            let mut v = stream.clone();
            v.extend_from_slice(tail);
            load(format, &v, 1 << 30).expect_err_short()
        };
        let expect = |err: FormatError, count: u64| {
            assert!(
                matches!(err, FormatError::TrailingGarbage { format: f, offset, count: c }
                    if f == format && offset == end && c == count),
                "{how}: {err:?}"
            );
        };
        expect(garbage(b"garbage!"), 8);
        // A trailer that does not match the decompressed size.
        expect(garbage(&(data.len() as u32 + 1).to_le_bytes()), 4);
        // A trailer followed by something other than zeros.
        let mut t = (data.len() as u32).to_le_bytes().to_vec();
        t.extend_from_slice(&[0, 0, 7]);
        expect(garbage(&t), 7);
        // A second stream (kernels never concatenate members)...
        if how.contains("lz4 -c -l") {
            // ... except that the kernel's unlz4 skips a repeated legacy magic number.
            let mut twice = stream.clone();
            twice.extend_from_slice(&stream);
            let loaded = load(format, &twice, 1 << 30).unwrap();
            assert!(inner(&loaded) == [data.as_slice(), data.as_slice()].concat());
        } else {
            expect(garbage(&stream), end);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rust encoders and fuzz-like inputs

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn lzma_alone(data: &[u8]) -> Vec<u8> {
    let opts = liblzma::stream::LzmaOptions::new_preset(0).unwrap();
    let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).unwrap()
}

fn lz4_frame(data: &[u8]) -> Vec<u8> {
    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = 0x184c_2102u32.to_le_bytes().to_vec();
    for chunk in data.chunks(8 << 20) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// An lzop file written the way lzop 1.04 does, with the given flags, delta filter and block
/// size (blocks that do not shrink are stored).
fn lzop(data: &[u8], flags: u32, filter: Option<u32>, block: usize) -> Vec<u8> {
    const F_ADLER32_D: u32 = 1;
    const F_ADLER32_C: u32 = 2;
    const F_CRC32_D: u32 = 0x100;
    const F_CRC32_C: u32 = 0x200;
    const F_H_FILTER: u32 = 0x800;
    let flags = flags | if filter.is_some() { F_H_FILTER } else { 0 };
    let mut h = Vec::new();
    h.extend_from_slice(&0x1040u16.to_be_bytes()); // version
    h.extend_from_slice(&0x20a0u16.to_be_bytes()); // library version
    h.extend_from_slice(&0x0940u16.to_be_bytes()); // version needed
    h.push(1); // method lzo1x_1
    h.push(5); // level
    h.extend_from_slice(&flags.to_be_bytes());
    if let Some(f) = filter {
        h.extend_from_slice(&f.to_be_bytes());
    }
    h.extend_from_slice(&0o100644u32.to_be_bytes()); // mode
    h.extend_from_slice(&1_700_000_000u32.to_be_bytes()); // mtime low
    h.extend_from_slice(&0u32.to_be_bytes()); // mtime high
    h.push(4);
    h.extend_from_slice(b"name");
    let mut out = vec![0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a];
    out.extend_from_slice(&h);
    out.extend_from_slice(&adler32(&h).to_be_bytes());
    for chunk in data.chunks(block) {
        let mut filtered = chunk.to_vec();
        if let Some(n) = filter {
            let n = n as usize;
            for i in (n..filtered.len()).rev() {
                filtered[i] = filtered[i].wrapping_sub(chunk[i - n]);
            }
        }
        let compressed = lzokay_native::compress(&filtered).unwrap();
        let stored = compressed.len() >= chunk.len();
        let body = if stored { &filtered } else { &compressed };
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        if flags & F_ADLER32_D != 0 {
            out.extend_from_slice(&adler32(chunk).to_be_bytes());
        }
        if flags & F_CRC32_D != 0 {
            out.extend_from_slice(&crc32fast::hash(chunk).to_be_bytes());
        }
        if !stored && flags & F_ADLER32_C != 0 {
            out.extend_from_slice(&adler32(body).to_be_bytes());
        }
        if !stored && flags & F_CRC32_C != 0 {
            out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
        }
        out.extend_from_slice(body);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

#[test]
fn lzop_layouts() {
    let data = sample(200_000, 5);
    // lzop refuses a compressed-data checksum without the uncompressed-data one; so do we.
    for flags in [2, 0x200, 0x201] {
        let err = load(Format::Lzo, &lzop(&data, flags, None, 1 << 16), 1 << 30).expect_err_short();
        assert!(
            matches!(
                err,
                FormatError::Field {
                    field: "lzop flags",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    for flags in [0, 1, 3, 0x100, 0x300, 0x301, 0x303] {
        for filter in [None, Some(1), Some(4), Some(16)] {
            for block in [1000, 64 << 10, 256 << 10] {
                let stream = lzop(&data, flags, filter, block);
                let (out, info) = decompress(Format::Lzo, &stream);
                assert!(
                    out == data,
                    "flags {flags:#x} filter {filter:?} block {block}"
                );
                let StreamParams::Lzo(l) = &info.params else {
                    panic!()
                };
                assert_eq!(l.filter, filter);
                assert_eq!(l.original_name.as_deref(), Some("name"));
                if have("lzop") && filter.is_none() {
                    let theirs = pipe("lzop", &["-dc"], &stream);
                    assert!(
                        theirs == data,
                        "lzop -dc agrees: flags {flags:#x} block {block}: {} bytes",
                        theirs.len()
                    );
                }
            }
        }
    }
    // A checksum mismatch in a filtered stream is still caught.
    let mut bad = lzop(&data, 1, Some(2), 64 << 10);
    let last = bad.len() - 10;
    bad[last] ^= 1;
    assert!(matches!(
        load(Format::Lzo, &bad, 1 << 30),
        Err(FormatError::Corrupt { .. })
    ));
}

type Encoder = fn(&[u8]) -> Vec<u8>;

const ENCODERS: [(Format, Encoder); 8] = [
    (Format::Gzip, gzip),
    (Format::Bzip2, bzip2),
    (Format::Xz, xz),
    (Format::Lzma, lzma_alone),
    (Format::Zstd, zstd),
    (Format::Lz4, lz4_frame),
    (Format::Lz4, lz4_legacy),
    (Format::Lzo, |d| lzop(d, 0x1, None, 32 << 10)),
];

const MAGICS: [(Format, &[u8]); 9] = [
    (Format::Gzip, &[0x1f, 0x8b, 0x08, 0x00]),
    (Format::Bzip2, b"BZh91AY&SY"),
    (Format::Lzma, &[0x5d, 0x00, 0x00, 0x80, 0x00]),
    (
        Format::Xz,
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00, 0x00, 0x01],
    ),
    (
        Format::Lzo,
        &[
            0x89, b'L', b'Z', b'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a, 0x10, 0x40,
        ],
    ),
    (Format::Lz4, &[0x02, 0x21, 0x4c, 0x18]),
    (Format::Lz4, &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40]),
    (Format::Zstd, &[0x28, 0xb5, 0x2f, 0xfd, 0x04]),
    (Format::Zstd, &[0x28, 0xb5, 0x2f, 0xfd, 0x24]),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rust_encoders_round_trip(seed in any::<u64>(), len in 0usize..200_000, noise in any::<bool>()) {
        let data = if noise {
            let mut x = seed | 1;
            (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect()
        } else {
            sample(len, seed)
        };
        for (format, encode) in ENCODERS {
            let stream = encode(&data);
            let loaded = load(format, &stream, 1 << 30).map_err(|e| TestCaseError::fail(format!("{format}: {e}")))?;
            prop_assert!(inner(&loaded) == data.as_slice(), "{} round trip", format);
            let with = with_trailer(&stream, data.len());
            let loaded = load(format, &with, 1 << 30).map_err(|e| TestCaseError::fail(format!("{format}: {e}")))?;
            prop_assert_eq!(info(&loaded).trailer, Some(data.len() as u32));
            // A limit one byte short of the output is always an OutputLimit.
            if !data.is_empty() {
                let err = load(format, &stream, data.len() as u64 - 1).expect_err_short();
                prop_assert!(matches!(err, FormatError::OutputLimit { .. }), "{}: {:?}", format, err);
            }
        }
    }

    #[test]
    fn random_bytes_after_magic_never_panic(which in 0usize..MAGICS.len(), tail in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (format, magic) = MAGICS[which];
        let mut data = magic.to_vec();
        data.extend_from_slice(&tail);
        // Whatever the result, no panic, and never more output than the limit.
        for l in compression::loaders() {
            if let Ok(loaded) = l.load(&Bytes::from(data.clone()), &ctx(1 << 16)) {
                prop_assert!(inner(&loaded).len() <= 1 << 16);
            }
        }
        let _ = format;
    }

    #[test]
    fn damaged_real_streams_never_panic(which in 0usize..ENCODERS.len(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let (format, encode) = ENCODERS[which];
        let data = sample(50_000, 11);
        let mut stream = encode(&data);
        let i = at.index(stream.len());
        stream[i] ^= byte | 1;
        let _ = load(format, &stream, 1 << 20);
        let n = cut.index(stream.len());
        let _ = load(format, &stream[..n], 1 << 20);
    }
}
