//! `domboot convert` end to end: detection, every syntax, atomic output, errors, --strict.
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/golden")
}

fn domboot() -> Command {
    Command::cargo_bin("domboot").expect("binary")
}

fn ext(syntax: &str) -> &'static str {
    match syntax {
        "toml" => "toml",
        "xml" => "xml",
        "xl" => "cfg",
        _ => "sexpr",
    }
}

const SYNTAXES: [&str; 4] = ["toml", "xml", "xl", "sexpr"];

#[test]
fn every_golden_input_converts_to_the_recorded_output() {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden().join("inputs"))
        .expect("inputs")
        .map(|e| e.expect("entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        for to in SYNTAXES {
            let out = domboot()
                .args(["convert", "--to", to])
                .arg(&input)
                .output()
                .expect("runs");
            assert!(
                out.status.success(),
                "{}: {}",
                input.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let expected = std::fs::read_to_string(
                golden()
                    .join("expected")
                    .join(format!("{stem}.{}", ext(to))),
            )
            .expect("expected file");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "{} → {to}",
                input.display()
            );
        }
    }
}

#[test]
fn seeds_convert_to_every_syntax_and_back_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    for seed in ["seed002_hvm_kernel.xml", "seed000_hvmdemo.cfg"] {
        let input = golden().join("inputs").join(seed);
        let reference = dir.path().join(format!("{seed}.ref.toml"));
        domboot()
            .args(["convert", "--strict", "--to", "toml", "-o"])
            .arg(&reference)
            .arg(&input)
            .assert()
            .success();
        for via in SYNTAXES {
            let mid = dir.path().join(format!("{seed}.{}", ext(via)));
            domboot()
                .args(["convert", "--strict", "--to", via, "-o"])
                .arg(&mid)
                .arg(&input)
                .assert()
                .success();
            let back = domboot()
                .args(["convert", "--strict", "--to", "toml"])
                .arg(&mid)
                .output()
                .expect("runs");
            assert!(
                back.status.success(),
                "{}",
                String::from_utf8_lossy(&back.stderr)
            );
            let mut got = String::from_utf8_lossy(&back.stdout).into_owned();
            if via == "sexpr" {
                // xend restarts a crashed guest unless told, so the SEXPR states the
                // model's default (destroy), and reading it back keeps it stated.
                got = got.replacen("on_crash = \"destroy\"\n", "", 1);
                // An HVM guest's xend clock reads back as libvirt reads it: a variable
                // offset of 0 from UTC, the same RTC as the seeds' unstated (UTC) one.
                got = got.replacen("[clock]\noffset = \"variable\"\nadjustment = 0\n\n", "", 1);
            }
            assert_eq!(
                got,
                std::fs::read_to_string(&reference).expect("reference"),
                "{seed} → {via} → toml"
            );
        }
    }
}

#[test]
fn output_file_is_written_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("guest.xml");
    std::fs::write(&out, "old").expect("write");
    domboot()
        .args(["convert", "--to", "xml", "-o"])
        .arg(&out)
        .arg(golden().join("inputs/seed000_hvmdemo.cfg"))
        .assert()
        .success()
        .stdout("");
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.starts_with("<domain type='xen'>"), "{text}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(names.len(), 1, "no temporary file left");

    // A failed conversion leaves the old file alone.
    let bad = dir.path().join("bad.cfg");
    std::fs::write(&bad, "name = 'x'\nmemory = 'lots'\n").expect("write");
    domboot()
        .args(["convert", "--to", "xml", "-o"])
        .arg(&out)
        .arg(&bad)
        .assert()
        .failure();
    assert_eq!(std::fs::read_to_string(&out).expect("still there"), text);
}

#[test]
fn reads_standard_input_with_from() {
    let out = domboot()
        .args(["convert", "--from", "sexpr", "--to", "xl", "-"])
        .write_stdin("(vm (name 'a')(memory 128)(image (linux (kernel '/k'))))")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kernel = \"/k\""));
}

#[test]
fn errors_name_file_line_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.sexpr");
    std::fs::write(&bad, "(vm (name 'a')\n  (memory 512)))\n").expect("write");
    let out = domboot()
        .args(["convert", "--to", "toml"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "bad.sexpr:2:16: syntax error: unexpected text after the closing `)` (at `)`)"
        ),
        "{err}"
    );

    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<domain>\n<name>a</name>\n<os><type>sparc</type></os>\n</domain>\n",
    )
    .expect("write");
    let out = domboot()
        .args(["convert", "--to", "toml"])
        .arg(&bad)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.xml:3:5: os/type: unknown guest type `sparc`"),
        "{err}"
    );

    let unknown = dir.path().join("mystery");
    std::fs::write(&unknown, "just some words\n").expect("write");
    let out = domboot()
        .args(["convert", "--to", "toml"])
        .arg(&unknown)
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from"),
        "suggests --from"
    );
}

#[test]
fn warnings_and_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("g.cfg");
    std::fs::write(&cfg, "name = 'g'\nmemory = 256\npci = [ '04:00.0' ]\n").expect("write");
    let out = domboot()
        .args(["convert", "--to", "toml"])
        .arg(&cfg)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("g.cfg:3:1: `pci` is not modelled by domboot; dropped"),
        "{err}"
    );
    domboot()
        .args(["convert", "--strict", "--to", "toml"])
        .arg(&cfg)
        .assert()
        .failure();

    // Model content the target cannot say: 1025 KiB is not a whole MiB for xl.
    let toml = dir.path().join("g.toml");
    std::fs::write(&toml, "name = 'g'\nmemory = '1025KiB'\n").expect("write");
    let out = domboot()
        .args(["convert", "--to", "xl"])
        .arg(&toml)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xl cannot say it: memory: \"1025KiB\" → \"2MiB\""),
        "{err}"
    );
    domboot()
        .args(["convert", "--strict", "--to", "xl"])
        .arg(&toml)
        .assert()
        .failure();
    domboot()
        .args(["convert", "--strict", "--to", "xml"])
        .arg(&toml)
        .assert()
        .success();
}

#[test]
fn compact_sexpr() {
    let out = domboot()
        .args(["convert", "--to", "sexpr", "--compact"])
        .arg(golden().join("inputs/seed002_hvm_kernel.xml"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(
        "(image (hvm (loader '/usr/lib/xen/boot/hvmloader')(kernel '/root/vmlinuz.f864')"
    ));
    domboot()
        .args(["convert", "--to", "xml", "--compact"])
        .arg(golden().join("inputs/seed002_hvm_kernel.xml"))
        .assert()
        .failure();
}

#[test]
fn help_names_the_syntaxes() {
    let out = domboot()
        .args(["convert", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["toml", "xml", "xl", "sexpr", "--strict", "domboot_*"] {
        assert!(help.contains(word), "help lacks {word}");
    }
}
