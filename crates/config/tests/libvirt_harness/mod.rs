//! The fact-comparison harness for libvirt's published conversion pairs
//! (tests/libvirt/README.md says where each file comes from).
//!
//! A *fact* is one meaning a configuration states (`memory.max = 592896`,
//! `disk[hda].driver = phy`), read with the defaults the tool that owns the syntax fills
//! in, so two spellings of one meaning agree. Each syntax has its own fact reader here
//! (`xml`, `xl`, `sexpr`), independent of domboot's readers except for tokenizing.
pub mod known;
pub mod sexpr;
pub mod xl;
pub mod xml;

use domboot_config::{Syntax, Warning, parse_with_warnings, write};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub type Facts = BTreeMap<String, String>;

/// Dashed lower-case form of a UUID written with or without dashes.
pub fn norm_uuid(u: &str) -> String {
    let hex: String = u
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 32 {
        return u.trim().to_string();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Xen's HVM firmware, the default every tool fills in.
pub const HVMLOADER: &str = "/usr/lib/xen/boot/hvmloader";

/// Whether a path names HVM firmware (the seeds' `kernel` = hvmloader rule).
pub fn is_firmware(p: &str) -> bool {
    let name = p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
    name.contains("hvmloader") || name.contains("ovmf") || name.contains("seabios")
}

/// One of libvirt's test suites, as copied into tests/libvirt/.
#[derive(Clone, Copy)]
pub struct Suite {
    pub name: &'static str,
    /// The native syntax (its extension) and the fact reader for it.
    pub native: Syntax,
    pub ext: &'static str,
    /// Which ways libvirt's suite converts: native → XML, XML → native.
    pub to_xml: bool,
    pub to_native: bool,
}

pub const SUITES: [Suite; 4] = [
    Suite {
        name: "xl",
        native: Syntax::Xl,
        ext: "cfg",
        to_xml: true,
        to_native: true,
    },
    Suite {
        name: "xm",
        native: Syntax::Xl,
        ext: "cfg",
        to_xml: true,
        to_native: true,
    },
    Suite {
        name: "sexpr2xml",
        native: Syntax::Sexpr,
        ext: "sexpr",
        to_xml: true,
        to_native: false,
    },
    Suite {
        name: "xml2sexpr",
        native: Syntax::Sexpr,
        ext: "sexpr",
        to_xml: false,
        to_native: true,
    },
];

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libvirt")
}

/// The stems of the suite's pairs (both files present), sorted.
pub fn pairs(suite: &Suite) -> Vec<String> {
    let dir = data_dir().join(suite.name);
    let mut stems: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()?.to_str()? == suite.ext)
                .then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .filter(|s| dir.join(format!("{s}.xml")).exists())
        .collect();
    stems.sort();
    stems
}

pub fn native_facts(suite: &Suite, text: &str) -> Result<Facts, String> {
    match suite.native {
        Syntax::Sexpr => sexpr::facts(text),
        _ => xl::facts(text),
    }
}

/// One fact that differs between libvirt's file and domboot's output.
#[derive(Debug, Clone)]
pub struct Diff {
    pub suite: &'static str,
    pub pair: String,
    pub direction: &'static str,
    pub key: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// Why a fact differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A feature domboot does not model, and its reader said so by name.
    Unmodelled,
    /// A difference listed (with its reason) in known.rs and the crate README.
    Documented,
    /// Neither: a domboot bug.
    Bug,
}

pub fn diff(
    suite: &Suite,
    pair: &str,
    direction: &'static str,
    expected: &Facts,
    actual: &Facts,
) -> Vec<Diff> {
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .map(|k| Diff {
            suite: suite.name,
            pair: pair.to_string(),
            direction,
            key: k.clone(),
            expected: expected.get(k).cloned(),
            actual: actual.get(k).cloned(),
        })
        .collect()
}

/// The names a warning would use for the thing a fact belongs to: the disk target in
/// `disk[hdb].source`, the feature in `features.hpet`, the vif parameter in
/// `vif[0].rate` (libvirt's `<bandwidth>`).
fn warned_names(key: &str) -> Vec<String> {
    if let Some(rest) = key.strip_prefix("disk[") {
        return rest
            .split(']')
            .next()
            .into_iter()
            .map(str::to_string)
            .collect();
    }
    // The guest CPU is xl's `cpuid`, `nestedhvm` and `vnuma`; sound is `soundhw`; a
    // host device is xl's `usbdev` or `pci`; a parallel port is `parallel`
    // everywhere, a channel `channel`.
    for (prefix, names) in [
        ("cpu.", &["cpu", "cpuid", "nestedhvm", "vnuma"][..]),
        ("sound[", &["sound", "soundhw"][..]),
        ("hostdev[", &["hostdev", "usbdev", "pci"][..]),
        ("parallel[", &["parallel"][..]),
        ("channel[", &["channel"][..]),
    ] {
        if key.starts_with(prefix) {
            return names.iter().map(|n| n.to_string()).collect();
        }
    }
    if let Some(f) = key.strip_prefix("features.") {
        // `features.tsc.mode`: the timer `tsc`.
        return f
            .split('.')
            .next()
            .map(str::to_string)
            .into_iter()
            .collect();
    }
    if let Some((_, param)) = key.strip_prefix("vif[").and_then(|r| r.split_once("].")) {
        let mut names = vec![param.to_string(), format!("{param}=")];
        if param == "rate" {
            names.push("bandwidth".into());
        }
        return names;
    }
    // libvirt's element for an xl key domboot does not model, where the names differ.
    let xml_names: &[&str] = match key {
        "cpuid" | "nestedhvm" | "vnuma" => &["cpu"],
        "tsc_mode" => &["tsc"],
        "usbdev" => &["hostdev"],
        "usbctrl" | "max_event_channels" | "max_grant_frames" => &["controller"],
        "controller[xenbus].maxEventChannels" => &["controller", "max_event_channels"],
        "controller[xenbus].maxGrantFrames" => &["controller", "max_grant_frames"],
        "acpi_firmware" => &["acpi"],
        "os.acpi_table[slic]" => &["acpi", "acpi_firmware"],
        "bios" | "os.loader_type" => &["loader", "bios"],
        "device_model_args" => &["commandline"],
        "commandline" => &["device_model_args"],
        "spicetls_port" => &["tlsPort"],
        "spiceagent_mouse" => &["mouse"],
        "spice_clipboard_sharing" => &["clipboard"],
        // libvirt turns the SPICE agent on for the client mouse and clipboard sharing.
        "spicevdagent" => &["mouse", "clipboard"],
        _ => &[],
    };
    if !xml_names.is_empty() {
        // Warned by either syntax's name: the XML element, or the xl key itself.
        return xml_names
            .iter()
            .map(|n| n.to_string())
            .chain(std::iter::once(key.to_string()))
            .collect();
    }
    // An attribute or element of a graphics device (`graphics[0].tlsPort`), or the xl key
    // that says it.
    if let Some((_, attr)) = key
        .strip_prefix("graphics[")
        .and_then(|r| r.split_once("]."))
    {
        let xl = match attr {
            "tlsPort" => "spicetls_port",
            "mouse" => "spiceagent_mouse",
            "clipboard" => "spice_clipboard_sharing",
            _ => attr,
        };
        return vec![attr.to_string(), xl.to_string()];
    }
    // A top-level key of the native syntax (`hpet`, `soundhw`) is warned by its own name.
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return vec![key.to_string()];
    }
    Vec::new()
}

pub fn classify(d: &Diff, warnings: &[Warning]) -> Class {
    if known::documented(d).is_some() {
        return Class::Documented;
    }
    for name in warned_names(&d.key) {
        let quoted = [
            format!("`{name}`"),
            format!("<{name}>"),
            format!("`{name}"),
            format!("`({name} "),
        ];
        if warnings
            .iter()
            .any(|w| quoted.iter().any(|q| w.message.contains(q.as_str())))
        {
            return Class::Unmodelled;
        }
    }
    Class::Bug
}

/// The result of running one direction of one pair.
pub struct Outcome {
    pub facts: usize,
    pub diffs: Vec<(Diff, Class)>,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// domboot's reading of a file; a file it cannot read gives no facts at all (so every
/// fact of the pair counts as differing), and the error is printed.
fn parse(
    text: &str,
    syntax: Syntax,
    name: &str,
) -> Option<(domboot_config::DomainConfig, Vec<Warning>)> {
    match parse_with_warnings(text, syntax, name) {
        Ok(r) => Some(r),
        Err(e) => {
            println!("  domboot cannot read {name}: {e}");
            None
        }
    }
}

fn facts_or_empty(r: Result<Facts, String>, what: &str) -> Facts {
    r.unwrap_or_else(|e| {
        println!("  no facts from {what}: {e}");
        Facts::new()
    })
}

fn outcome(
    suite: &Suite,
    pair: &str,
    direction: &'static str,
    expected: &Facts,
    actual: &Facts,
    warnings: &[Warning],
) -> Outcome {
    let diffs = diff(suite, pair, direction, expected, actual)
        .into_iter()
        .map(|d| {
            let c = classify(&d, warnings);
            (d, c)
        })
        .collect();
    Outcome {
        facts: expected.len().max(actual.len()),
        diffs,
    }
}

/// A pair of libvirt's suite whose two files do not share a name: libvirt's test names
/// both files itself (`DO_TEST("fv", "fv-v2", ..)` in xml2sexprtest.c), or the stored
/// copy of one file is under another name (tests/libvirt/README.md says which).
pub struct NamedPair {
    pub suite: &'static str,
    /// The pair's name in the counts, known.rs and the bug list.
    pub name: &'static str,
    /// The native file's and the XML file's stems in the suite's folder.
    pub native: &'static str,
    pub xml: &'static str,
    /// The directions libvirt's test converts this pair in (native → XML, XML → native).
    pub to_xml: bool,
    pub to_native: bool,
}

pub const NAMED_PAIRS: &[NamedPair] = &[
    // xmconfigtest.c (before 2015): `test-fullvirt-usbtablet-no-bus.xml` written as xm
    // must give `test-fullvirt-usbtablet.cfg` (an input with no bus is USB's tablet).
    NamedPair {
        suite: "xm",
        name: "test-fullvirt-usbtablet-no-bus",
        native: "test-fullvirt-usbtablet",
        xml: "test-fullvirt-usbtablet-no-bus",
        to_xml: false,
        to_native: true,
    },
    // xmconfigtest.c: DO_TEST("paravirt-net-fakemodel"); the stored .cfg of libvirt's
    // commit c800e29 is `test-paravirt-net-modelstr.cfg` (the same guest, `model=fakemodel`).
    NamedPair {
        suite: "xm",
        name: "test-paravirt-net-fakemodel",
        native: "test-paravirt-net-modelstr",
        xml: "test-paravirt-net-fakemodel",
        to_xml: true,
        to_native: true,
    },
    // xml2sexprtest.c: DO_TEST("fv", "fv-v2", "fvtest"): xml2sexpr-fv.xml as xend config
    // version 2 writes it.
    NamedPair {
        suite: "xml2sexpr",
        name: "xml2sexpr-fv-v2",
        native: "xml2sexpr-fv-v2",
        xml: "xml2sexpr-fv",
        to_xml: false,
        to_native: true,
    },
];

/// The suite's pairs whose files have different names.
pub fn named_pairs(suite: &Suite) -> impl Iterator<Item = &'static NamedPair> + use<'_> {
    NAMED_PAIRS.iter().filter(move |p| p.suite == suite.name)
}

/// Run every direction libvirt's suite has for one pair, plus round trips through domboot.
pub fn run_pair(suite: &Suite, pair: &str) -> Vec<Outcome> {
    run_files(suite, pair, pair, pair, suite.to_xml, suite.to_native)
}

/// Run a pair whose files have different names, in the directions libvirt's test has.
pub fn run_named_pair(suite: &Suite, p: &NamedPair) -> Vec<Outcome> {
    run_files(suite, p.name, p.native, p.xml, p.to_xml, p.to_native)
}

fn run_files(
    suite: &Suite,
    pair: &str,
    native_stem: &str,
    xml_stem: &str,
    to_xml: bool,
    to_native: bool,
) -> Vec<Outcome> {
    let dir = data_dir().join(suite.name);
    let native_path = dir.join(format!("{native_stem}.{}", suite.ext));
    let xml_path = dir.join(format!("{xml_stem}.xml"));
    let native_text = read(&native_path);
    let xml_text = read(&xml_path);
    let native_name = native_path.display().to_string();
    let xml_name = xml_path.display().to_string();
    let xml_expected = facts_or_empty(xml::facts(&xml_text), &xml_name);
    let native_expected = facts_or_empty(native_facts(suite, &native_text), &native_name);
    let mut out = Vec::new();
    let directions = [
        (
            to_xml,
            &native_text,
            suite.native,
            &native_name,
            "to-xml",
            "native-rt",
        ),
        (
            to_native,
            &xml_text,
            Syntax::Xml,
            &xml_name,
            "xml-rt",
            "to-native",
        ),
    ];
    for (wanted, text, syntax, name, xml_dir, native_dir) in directions {
        if !wanted {
            continue;
        }
        let (xml_got, native_got, w) = match parse(text, syntax, name) {
            Some((c, w)) => (
                facts_or_empty(xml::facts(&write(&c, Syntax::Xml)), "domboot's XML"),
                facts_or_empty(native_facts(suite, &write(&c, suite.native)), "domboot"),
                w,
            ),
            None => (Facts::new(), Facts::new(), Vec::new()),
        };
        out.push(outcome(suite, pair, xml_dir, &xml_expected, &xml_got, &w));
        out.push(outcome(
            suite,
            pair,
            native_dir,
            &native_expected,
            &native_got,
            &w,
        ));
    }
    out
}
