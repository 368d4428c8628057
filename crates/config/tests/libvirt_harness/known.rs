//! Differences from libvirt that are not domboot bugs, each with its reason. The crate
//! README lists the same ones ("Where domboot differs from libvirt").
use super::Diff;

/// (suite, pair, direction, fact key prefix, reason); `*` matches anything.
pub const KNOWN: &[(&str, &str, &str, &str, &str)] = &[
    ("xl", "test-fullvirt-nohap", "*", "emulator", VERSIONS),
    ("xl", "test-fullvirt-nohap", "*", "device_model", VERSIONS),
    ("xm", "test-fullvirt-serial-udp", "*", "emulator", VERSIONS),
    (
        "xm",
        "test-fullvirt-serial-udp",
        "*",
        "device_model",
        VERSIONS,
    ),
    (
        "xm",
        "test-fullvirt-serial-udp",
        "to-xml",
        "clock.",
        "libvirt's XML predates its reading `rtc_timeoffset = 0` as a variable clock \
         (test-fullvirt-localtime.xml, copied at a later commit, has the newer reading)",
    ),
    ("xm", "test-fullvirt-serial-null", "*", "emulator", VERSIONS),
    (
        "xm",
        "test-fullvirt-serial-null",
        "*",
        "device_model",
        VERSIONS,
    ),
    (
        "xm",
        "test-fullvirt-serial-null",
        "to-xml",
        "clock.",
        "libvirt's XML predates its reading `rtc_timeoffset = 0` as a variable clock",
    ),
    ("xm", "test-fullvirt-serial-tcp", "*", "emulator", VERSIONS),
    (
        "xm",
        "test-fullvirt-serial-tcp",
        "*",
        "device_model",
        VERSIONS,
    ),
    (
        "xm",
        "test-fullvirt-serial-tcp",
        "to-xml",
        "clock.",
        "libvirt's .cfg, copied at an older commit, has no `rtc_timeoffset = 0` yet; the \
         XML, copied later, states the variable clock libvirt reads from that line",
    ),
    ("xm", "test-no-source-cdrom", "*", "emulator", VERSIONS),
    ("xm", "test-no-source-cdrom", "*", "device_model", VERSIONS),
    ("xm", "test-fullvirt-utc", "*", "emulator", VERSIONS),
    ("xm", "test-fullvirt-utc", "*", "device_model", VERSIONS),
    (
        "xm",
        "test-no-source-cdrom",
        "to-xml",
        "clock.",
        "libvirt's XML predates its reading `rtc_timeoffset = 0` as a variable clock",
    ),
    (
        "xm",
        "test-no-source-cdrom",
        "to-xml",
        "disk[hdc].",
        "an empty cdrom drive has no backend; libvirt's xm reader called it a `phy` block \
         device, domboot names none (a file)",
    ),
    (
        "xm",
        "test-pci-devs",
        "to-xml",
        "disk[hdc].",
        "an empty cdrom drive (`,hdc:cdrom,r`) has no backend; libvirt's xm reader called \
         it a `phy` block device, domboot names none (a file)",
    ),
    (
        "xm",
        "test-fullvirt-new-cdrom",
        "*",
        "vif[0].script",
        "the two files are from different libvirt commits (tests/libvirt/SOURCES.tsv): the \
         .cfg names `script=vif-bridge`, the XML of the other commit has no <script>",
    ),
    (
        "xm",
        "test-fullvirt-new-cdrom",
        "*",
        "interface[0].script",
        "the two files are from different libvirt commits: the .cfg names \
         `script=vif-bridge`, the XML of the other commit has no <script>",
    ),
    (
        "xm",
        "test-fullvirt-usbtablet-no-bus",
        "to-native",
        "vif[0].model",
        "the two files are from different libvirt commits (tests/libvirt/SOURCES.tsv): the \
         XML's last stored version (11ec6bd) names no NIC model, the stored .cfg (20311a9) \
         names `model=e1000`, as test-fullvirt-usbtablet.xml of the later commit does",
    ),
    (
        "xm",
        "*",
        "*",
        "vif[0].type",
        "domboot writes xl's spelling of a PV-only NIC, `type=vif`; xm's is `type=netfront`",
    ),
    ("sexpr2xml", "sexpr2xml-pv-vfb-new", "*", "", STRAY_PAREN),
    (
        "sexpr2xml",
        "sexpr2xml-pv-vfb-new-vncdisplay",
        "*",
        "",
        STRAY_PAREN,
    ),
    (
        "sexpr2xml",
        "*",
        "to-xml",
        "graphics[0].passwd",
        "libvirt leaves passwords out of the XML it prints unless asked for secure output; \
         domboot keeps them",
    ),
    (
        "sexpr2xml",
        "sexpr2xml-fv-net-ioemu",
        "to-xml",
        "clock.",
        UNTESTED_OLD_READER,
    ),
    (
        "sexpr2xml",
        "sexpr2xml-fv-net-ioemu",
        "to-xml",
        "graphics[0].port",
        UNTESTED_OLD_READER,
    ),
    (
        "sexpr2xml",
        "sexpr2xml-fv-legacy-vfb",
        "to-xml",
        "clock.",
        UNTESTED_OLD_READER,
    ),
    (
        "xml2sexpr",
        "*",
        "to-native",
        "usb",
        "libvirt's xend writer turned the emulated USB bus on for every HVM guest (`(usb 1)`); \
         the XML states no USB device; domboot writes no `(usb 1)` (a USB input's \
         `(usbdevice ..)` turns the bus on in xend's qemu-dm)",
    ),
    (
        "xml2sexpr",
        "*",
        "to-native",
        "vfb[0].vnc",
        "libvirt's old HVM writer left out the fixed VNC display its XML states; domboot \
         writes `(vncdisplay N)` so xend keeps the port",
    ),
    (
        "xml2sexpr",
        "xml2sexpr-pv-localtime",
        "to-native",
        "vfb[0].",
        "libvirt's xend writer, for the Xen 3.0.3 its test ran against, put a PV guest's VNC \
         display only inside `(image (linux ..))`, which a bootloader guest has none of, so \
         the display was lost; domboot writes the `(vfb ..)` device later xend reads",
    ),
    (
        "xml2sexpr",
        "xml2sexpr-disk-block-shareable",
        "to-native",
        "kernel",
        BOOTLOADER_KERNEL,
    ),
    (
        "xml2sexpr",
        "xml2sexpr-disk-block-shareable",
        "to-native",
        "ramdisk",
        BOOTLOADER_KERNEL,
    ),
    (
        "xml2sexpr",
        "xml2sexpr-fv-net-many-models",
        "to-native",
        "pae",
        PAE_CAPS,
    ),
    (
        "xml2sexpr",
        "xml2sexpr-fv-utc",
        "to-native",
        "pae",
        PAE_CAPS,
    ),
    (
        "xml2sexpr",
        "xml2sexpr-pv-vfb-new",
        "to-native",
        "vfb[0].keymap",
        "the two files are from different libvirt commits (tests/libvirt/SOURCES.tsv): the \
         SEXPR (11ec6bd) has `(keymap 'ja')`, the only stored XML (7a9f673) predates the \
         keymap it was later given",
    ),
    (
        "xml2sexpr",
        "*",
        "to-native",
        "vfb[0].keymap",
        "libvirt's old HVM writer left out the keymap its XML states; domboot writes it",
    ),
];

/// The two files of a pair were copied from different libvirt commits (see
/// tests/libvirt/SOURCES.tsv); the device model path changed between them.
const VERSIONS: &str = "libvirt changed this file's device model path at a different \
                        commit from its pair's";

/// libvirt's later xml2sexpr files (at and after commit c800e29) add `(pae 1)`.
const PAE_CAPS: &str = "libvirt's test turned PAE on for this HVM guest from its test host's \
                        capabilities (an HVM guest defaults to PAE there); the XML does not \
                        name <pae/>, and domboot writes only what it states";

/// Two of libvirt's xend files end with one `)` too many.
const STRAY_PAREN: &str = "libvirt's copy of this file has one `)` too many at the end; libvirt \
                           ignores it, domboot reports the syntax error with its position";

/// Two sexpr2xml pairs libvirt's test stopped converting, so their XML was never updated.
const UNTESTED_OLD_READER: &str = "libvirt's newest sexpr2xmltest.c no longer converts this \
                                   pair; its XML (the newest stored version, \
                                   tests/libvirt/SOURCES.tsv) is an older reader's: an HVM \
                                   clock as `utc`, a running domain's display as 5900 + its \
                                   id. libvirt's newest reader (xen_sxpr.c) reads the file as \
                                   domboot does: a variable clock, adjustment 0 from UTC, and \
                                   no port (autoport)";

/// A bootloader guest's `<kernel>`/`<initrd>` (what pygrub extracted for a running domain).
const BOOTLOADER_KERNEL: &str = "libvirt's xend writer leaves out a bootloader guest's kernel and \
                                 initrd (the files pygrub extracted for a running domain); \
                                 domboot keeps them, and xend's bootloader replaces them at start";

/// The reason a difference is expected, if it is listed.
pub fn documented(d: &Diff) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(suite, pair, dir, key, _)| {
            (*suite == "*" || *suite == d.suite)
                && (*pair == "*" || *pair == d.pair)
                && (*dir == "*" || *dir == d.direction)
                && d.key.starts_with(key)
        })
        .map(|k| k.4)
}
