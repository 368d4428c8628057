//! Decompression throughput of the compression loaders against the command-line tools.
//!
//! For each bzImage payload (the tiny kernels in `shared/kernels/`, and a Debian kernel found
//! under `~/.cache/domboot/debian/` if the project's set-up fetched one) it measures our
//! loader with criterion, then, in the same run, times ours and `tool -dc < payload >
//! /dev/null` side by side and prints a table with the ratio ours/theirs (time; below 1.0 is
//! faster than the tool). The tool's time includes its process start-up, which is shown
//! separately (the same tool on a one-byte stream) and subtracted in the last column.
//!
//! `cargo bench -p domboot-formats --bench decompress` (add `-- --quick` for a short run).

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use domboot_formats::compression;
use domboot_formats::{Format, LoadContext, Loader};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Payload {
    name: String,
    format: Format,
    data: Bytes,
    out_len: usize,
    /// The payload in a file, for the tool's stdin.
    file: PathBuf,
}

fn le32(d: &[u8], o: usize) -> Option<usize> {
    Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?) as usize)
}

/// The compressed payload of a bzImage, if `path` is one.
fn bzimage_payload(path: &Path) -> Option<Vec<u8>> {
    let image = std::fs::read(path).ok()?;
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let setup_sects = match *image.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + le32(&image, 0x248)?;
    Some(image.get(start..start + le32(&image, 0x24c)?)?.to_vec())
}

fn find_debian_kernels() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from(home).join(".cache/domboot/debian")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

fn payloads(tmp: &Path) -> Vec<Payload> {
    let kernels = std::env::var_os("DOMBOOT_KERNELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kernels")
        });
    let mut sources: Vec<(String, PathBuf)> = ["gzip", "bzip2", "lzma", "xz", "lzo", "lz4", "zstd"]
        .iter()
        .map(|c| {
            (
                format!("tiny-{c}"),
                kernels.join(format!("bzImage-x64-pvh-{c}")),
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for k in find_debian_kernels() {
        if !seen.insert(std::fs::canonicalize(&k).unwrap_or_else(|_| k.clone())) {
            continue;
        }
        let name = k
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        sources.push((format!("debian {name}"), k));
    }
    let mut out = Vec::new();
    for (name, path) in sources {
        let Some(data) = bzimage_payload(&path) else {
            eprintln!("note: no bzImage payload in {}; skipped", path.display());
            continue;
        };
        let Some(format) = compression::probe(&data) else {
            eprintln!(
                "note: {}: payload is not a known compressed stream",
                path.display()
            );
            continue;
        };
        let data = Bytes::from(data);
        let loaded = loader(format)
            .load(&data, &LoadContext::default())
            .expect("decompresses");
        let out_len = loaded.inner.map_or(0, |b| b.len());
        let file = tmp.join(format!("{}-{}", out.len(), name.replace(' ', "_")));
        std::fs::write(&file, &data).expect("temp file");
        out.push(Payload {
            name,
            format,
            data,
            out_len,
            file,
        });
    }
    out
}

fn loader(format: Format) -> Box<dyn Loader> {
    compression::loaders()
        .into_iter()
        .find(|l| l.name() == format.name())
        .expect("a loader per format")
}

fn tool(format: Format) -> &'static str {
    match format {
        Format::Gzip => "gzip",
        Format::Bzip2 => "bzip2",
        Format::Lzma => "lzma",
        Format::Xz => "xz",
        Format::Lzo => "lzop",
        Format::Lz4 => "lz4",
        Format::Zstd => "zstd",
        _ => "cat",
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `tool -dc < file > /dev/null`, or None if the tool cannot run.
fn time_tool(tool: &str, file: &Path, runs: usize) -> Option<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let stdin = File::open(file).ok()?;
        let start = Instant::now();
        // Exit status ignored: the tools complain about the kernel's size trailer.
        Command::new(tool)
            .arg("-dc")
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        times.push(start.elapsed());
    }
    Some(median(times))
}

/// The tool's start-up: decompressing a one-byte stream it made itself.
fn tool_startup(tool: &str, tmp: &Path, runs: usize) -> Option<Duration> {
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(b"x").ok()?;
    let tiny = child.wait_with_output().ok()?.stdout;
    let file = tmp.join(format!("startup-{tool}"));
    std::fs::write(&file, tiny).ok()?;
    time_tool(tool, &file, runs)
}

fn time_ours(p: &Payload, runs: usize) -> Duration {
    let l = loader(p.format);
    let ctx = LoadContext::default();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let loaded = l.load(&p.data, &ctx).expect("decompresses");
        std::hint::black_box(&loaded);
        times.push(start.elapsed());
    }
    median(times)
}

fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let payloads = payloads(tmp.path());
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    {
        let mut group = c.benchmark_group("decompress");
        for p in &payloads {
            let l = loader(p.format);
            let ctx = LoadContext::default();
            group.throughput(Throughput::Bytes(p.out_len as u64));
            group.bench_function(&p.name, |b| {
                b.iter(|| l.load(&p.data, &ctx).expect("decompresses"))
            });
        }
        group.finish();
    }

    if std::env::var_os("DOMBOOT_BENCH_NO_TABLE").is_some() {
        c.final_summary();
        return;
    }
    let runs = 15;
    println!();
    println!(
        "ours vs the command-line tool, median of {runs} runs, MB/s of output (MB = 10^6 bytes)"
    );
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} | {:<6} {:>9} {:>9} {:>8} | {:>7} {:>9}",
        "payload",
        "format",
        "out MB",
        "ours ms",
        "ours MB/s",
        "tool",
        "tool ms",
        "MB/s",
        "start ms",
        "ratio",
        "ratio-st"
    );
    for p in &payloads {
        let ours = time_ours(p, runs);
        let t = tool(p.format);
        let theirs = time_tool(t, &p.file, runs);
        let startup = tool_startup(t, tmp.path(), runs);
        let (tool_ms, tool_mbps, ratio) = match theirs {
            Some(th) => (
                format!("{:.2}", th.as_secs_f64() * 1e3),
                format!("{:.0}", mbps(p.out_len, th)),
                format!("{:.2}", ours.as_secs_f64() / th.as_secs_f64()),
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        let (start_ms, ratio_st) = match (theirs, startup) {
            (Some(th), Some(st)) if th > st => (
                format!("{:.2}", st.as_secs_f64() * 1e3),
                format!("{:.2}", ours.as_secs_f64() / (th - st).as_secs_f64()),
            ),
            _ => ("n/a".into(), "n/a".into()),
        };
        println!(
            "{:<28} {:>6} {:>9.2} {:>9.2} {:>9.0} | {:<6} {:>9} {:>9} {:>8} | {:>7} {:>9}",
            p.name,
            p.format.name(),
            p.out_len as f64 / 1e6,
            ours.as_secs_f64() * 1e3,
            mbps(p.out_len, ours),
            t,
            tool_ms,
            tool_mbps,
            start_ms,
            ratio,
            ratio_st
        );
    }
    println!(
        "ratio = ours / tool time (< 1.0: we are faster); ratio-st = ours / (tool - tool start-up)"
    );
    c.final_summary();
}
