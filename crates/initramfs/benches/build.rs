//! Building an initramfs of busybox (+ its applet links) and 50 MB of generated files:
//! ours (gzip, parallel blocks) against `find . | cpio -o -H newc | gzip`, the pipeline
//! users would otherwise run, timed side by side in the same run.
//!
//! The files are written once to a temporary directory (a third of their bytes random, the
//! rest text-like, in files of 4 KiB to 1 MiB) and are in the page cache for both.
//! Criterion measures ours; then a table gives the median of several runs of each, with
//! the output sizes and the ratio ours/theirs (below 1.0: we are faster).
//!
//! `cargo bench -p domboot-initramfs --bench build` (add `-- --quick` for a short run).

use criterion::Criterion;
use domboot_initramfs::{CompressOptions, Compression, Initramfs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOTAL: usize = 50 * 1000 * 1000;

/// xorshift bytes; `text` makes them compressible like logs or scripts.
fn fill(buf: &mut Vec<u8>, len: usize, seed: &mut u64, text: bool) {
    buf.clear();
    while buf.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        if text {
            let words = ["kernel", "module", "init", "device", "0x", "ok", "\n", "="];
            buf.extend_from_slice(words[(*seed % 8) as usize].as_bytes());
            buf.extend_from_slice(format!("{} ", *seed % 1000).as_bytes());
        } else {
            buf.extend_from_slice(&seed.to_le_bytes());
        }
    }
    buf.truncate(len);
}

/// The tree both builds read: root/bin/busybox, applet links, root/data/**.
fn make_tree(root: &Path, busybox: &Path) -> usize {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    let list = Command::new(busybox).arg("--list-full").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = std::os::unix::fs::symlink("/bin/busybox", link);
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = Vec::new();
    let (mut written, mut files) = (0, 0);
    while written < TOTAL {
        let dir = root.join(format!("data/d{:02}", files / 40));
        std::fs::create_dir_all(&dir).unwrap();
        let len = (4096 + (seed % (1 << 20)) as usize).min(TOTAL - written);
        fill(&mut buf, len, &mut seed, files % 3 != 0);
        std::fs::write(dir.join(format!("f{files:04}")), &buf).unwrap();
        written += len;
        files += 1;
    }
    files
}

fn ours(busybox: &Path, data: &Path, out: &Path, c: Compression, threads: usize) -> u64 {
    let fs = Initramfs::new()
        .busybox(busybox)
        .unwrap()
        .dir_tree(data, "/data")
        .unwrap();
    let file = std::fs::File::create(out).unwrap();
    let opts = CompressOptions {
        level: None,
        threads,
    };
    fs.write_with(&file, c, &opts).unwrap().output_bytes
}

fn theirs(root: &Path, out: &Path) -> u64 {
    let script = format!(
        "cd '{}' && find . | cpio -o -H newc --quiet | gzip > '{}'",
        root.display(),
        out.display()
    );
    let ok = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "find | cpio | gzip failed");
    std::fs::metadata(out).unwrap().len()
}

fn median(mut f: impl FnMut() -> u64, runs: usize) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        size = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[runs / 2], size)
}

fn main() {
    let busybox = domboot_initramfs::busybox::find().expect("a static busybox");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let files = make_tree(&root, &busybox);
    let data = root.join("data");
    let out = tmp.path().join("out.gz");
    // Warm the page cache.
    theirs(&root, &out);

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .configure_from_args();
    c.bench_function("busybox+50MB gzip (ours)", |b| {
        b.iter(|| ours(&busybox, &data, &out, Compression::Gzip, 0))
    });
    c.bench_function("busybox+50MB gzip (find|cpio|gzip)", |b| {
        b.iter(|| theirs(&root, &out))
    });

    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 5 };
    let threads = CompressOptions::default().threads();
    println!(
        "\nbusybox + {files} files, {} MB; median of {runs} runs; {threads} threads",
        TOTAL / 1_000_000
    );
    let (t_theirs, s_theirs) = median(|| theirs(&root, &out), runs);
    println!(
        "{:<44} {:>8.3} s  {:>10} bytes",
        "find . | cpio -o -H newc | gzip (level 6)",
        t_theirs.as_secs_f64(),
        s_theirs
    );
    for (label, comp, th) in [
        ("domboot gzip (level 6)", Compression::Gzip, 0),
        ("domboot gzip (level 6, 1 thread)", Compression::Gzip, 1),
        ("domboot zstd (level 3)", Compression::Zstd, 0),
        ("domboot lz4 (legacy)", Compression::Lz4, 0),
        ("domboot none", Compression::None, 0),
    ] {
        let (t, s) = median(|| ours(&busybox, &data, &out, comp, th), runs);
        println!(
            "{label:<44} {:>8.3} s  {s:>10} bytes  ratio ours/theirs {:.2}",
            t.as_secs_f64(),
            t.as_secs_f64() / t_theirs.as_secs_f64()
        );
    }
}
