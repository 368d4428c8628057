//! Golden files: configurations written from each format's documentation and the seeds'
//! own examples (tests/golden/inputs), converted to every syntax (tests/golden/expected).
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files after a deliberate change.
use domboot_config::{DomainConfig, Syntax, detect, parse_with_warnings, write};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn ext(s: Syntax) -> &'static str {
    match s {
        Syntax::Toml => "toml",
        Syntax::Xml => "xml",
        Syntax::Xl => "cfg",
        Syntax::Sexpr => "sexpr",
    }
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(golden_dir().join("inputs"))
        .expect("inputs folder")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    assert!(v.len() >= 10, "golden inputs missing");
    v
}

fn read_input(path: &Path) -> (DomainConfig, Syntax) {
    let text = std::fs::read_to_string(path).expect("readable");
    let name = path.display().to_string();
    let syntax = detect(&text, &name).unwrap_or_else(|| panic!("{name}: syntax not detected"));
    let (config, _warnings) =
        parse_with_warnings(&text, syntax, &name).unwrap_or_else(|e| panic!("{e}"));
    (config, syntax)
}

#[test]
fn every_input_converts_to_every_syntax_as_recorded() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for input in inputs() {
        let (config, _) = read_input(&input);
        let stem = input.file_stem().and_then(|s| s.to_str()).expect("stem");
        for syntax in Syntax::ALL {
            let out = write(&config, syntax);
            let expected_path = golden_dir()
                .join("expected")
                .join(format!("{stem}.{}", ext(syntax)));
            if update {
                std::fs::write(&expected_path, &out).expect("write golden");
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
                panic!("{} missing (UPDATE_GOLDEN=1)", expected_path.display())
            });
            if expected != out {
                mismatches.push(format!("{}:\n{out}", expected_path.display()));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches:\n{}",
        mismatches.join("\n")
    );
}

/// The disk backends the writers name where the model names none: xend needs one in
/// every uname (`phy:` for a block device, `file:` for a file); xl leaves it to libxl,
/// which serves an image file or an empty drive with qdisk (libvirt's `qemu`). Reading it
/// back names it.
fn with_xend_defaults(c: &DomainConfig, syntaxes: &[Syntax]) -> DomainConfig {
    let mut c = c.clone();
    for s in syntaxes {
        // xend's default on_crash (restart) is not the model's (destroy): it is written.
        if *s == Syntax::Sexpr {
            c.on_crash
                .get_or_insert(domboot_config::LifecycleAction::Destroy);
            // An HVM guest's clock reads back as libvirt reads xend's: a variable offset
            // (0 from UTC or local time unless stated).
            if c.guest_type == domboot_config::GuestType::Hvm {
                c.clock = domboot_config::sexpr::hvm_clock(c.clock.as_ref());
            }
        }
        for d in &mut c.disks {
            let block = d.kind == domboot_config::DiskKind::Block;
            let on_dev = d.source.as_deref().is_some_and(|s| s.starts_with("/dev/"));
            match (s, &d.driver, &d.source) {
                (Syntax::Xl, None, _) if !on_dev => d.driver = Some("qemu".into()),
                (Syntax::Sexpr, None, Some(_)) => {
                    d.driver = Some(if block { "phy" } else { "file" }.into())
                }
                // An empty drive has no uname to carry a backend on.
                (Syntax::Sexpr, Some(_), None) => d.driver = None,
                _ => {}
            }
        }
    }
    c
}

#[test]
fn every_input_survives_every_chain_of_conversions() {
    for input in inputs() {
        let (config, _) = read_input(&input);
        for a in Syntax::ALL {
            let via_a = domboot_config::parse(&write(&config, a), a, "a")
                .unwrap_or_else(|e| panic!("{}: {a}: {e}", input.display()));
            let want = with_xend_defaults(&config, &[a]);
            assert_eq!(via_a, want, "{} → {a} → model", input.display());
            for b in Syntax::ALL {
                let via_b = domboot_config::parse(&write(&via_a, b), b, "b")
                    .unwrap_or_else(|e| panic!("{}: {a}→{b}: {e}", input.display()));
                let want = with_xend_defaults(&config, &[a, b]);
                assert_eq!(via_b, want, "{} → {a} → {b} → model", input.display());
            }
            // The only loss allowed: the disk backend xend needs, named.
            let losses: Vec<String> = domboot_config::losses(&config, a)
                .into_iter()
                .filter(|l| {
                    !(a != Syntax::Toml && a != Syntax::Xml && l.contains("].driver: (none)"))
                })
                .collect();
            assert!(
                losses.is_empty(),
                "{} to {a} loses {losses:?}",
                input.display(),
            );
        }
    }
}

#[test]
fn expected_files_read_back_to_the_same_model() {
    for input in inputs() {
        let (config, _) = read_input(&input);
        let stem = input.file_stem().and_then(|s| s.to_str()).expect("stem");
        for syntax in Syntax::ALL {
            let path = golden_dir()
                .join("expected")
                .join(format!("{stem}.{}", ext(syntax)));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            assert_eq!(
                detect(&text, &path.display().to_string()),
                Some(syntax),
                "{}",
                path.display()
            );
            let back = domboot_config::parse(&text, syntax, &path.display().to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                back,
                with_xend_defaults(&config, &[syntax]),
                "{}",
                path.display()
            );
        }
    }
}
