//! The Xen ELF notes: their numbers (Xen's `xen/include/public/elfnote.h`), names and
//! the decoded form `inspect` shows. Numeric Xen notes are 1, 2, 4 or 8 bytes (Xen's
//! `elf_note_numeric`), in the file's byte order; the decoding is in [`super::notes`].

use serde::Serialize;

pub const XEN_ELFNOTE_INFO: u32 = 0;
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
pub const XEN_ELFNOTE_LOADER: u32 = 8;
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Xen 4.20+: alignment, minimum and maximum physical load address (32-bit each) of a
/// relocatable PVH kernel.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;

/// `XEN_ELFNOTE_PHYS32_RELOC`: where a relocatable PVH kernel may be loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Phys32Reloc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// The Xen notes, decoded by name. A field is `None` (and absent from the JSON) when the
/// image lacks that note. With duplicates the first note wins (a warning says so).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XenNotes {
    /// INFO (0): a `NAME=VALUE` string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// ENTRY (1): virtual address of the PV entry point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// HYPERCALL_PAGE (2): virtual address of the hypercall page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypercall_page: Option<u64>,
    /// VIRT_BASE (3): where the kernel is mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virt_base: Option<u64>,
    /// PADDR_OFFSET (4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paddr_offset: Option<u64>,
    /// XEN_VERSION (5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xen_version: Option<String>,
    /// GUEST_OS (6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_os: Option<String>,
    /// GUEST_VERSION (7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_version: Option<String>,
    /// LOADER (8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader: Option<String>,
    /// PAE_MODE (9): "yes", "no", "bimodal"...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pae_mode: Option<String>,
    /// FEATURES (10): `|`-separated XENFEAT names, `!` marking required ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<String>,
    /// BSD_SYMTAB (11): "yes" or "no".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bsd_symtab: Option<String>,
    /// HV_START_LOW (12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hv_start_low: Option<u64>,
    /// L1_MFN_VALID (13): mask/value pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l1_mfn_valid: Option<Vec<u64>>,
    /// SUSPEND_CANCEL (14).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend_cancel: Option<u64>,
    /// INIT_P2M (15).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_p2m: Option<u64>,
    /// MOD_START_PFN (16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mod_start_pfn: Option<u64>,
    /// SUPPORTED_FEATURES (17): bitmap of XENFEAT numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_features: Option<u32>,
    /// PHYS32_ENTRY (18): the PVH entry (physical, 32-bit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phys32_entry: Option<u64>,
    /// PHYS32_RELOC (19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phys32_reloc: Option<Phys32Reloc>,
}

impl XenNotes {
    /// True when the image has no decoded Xen note.
    pub fn is_empty(&self) -> bool {
        *self == XenNotes::default()
    }
}

/// The symbolic name of a Xen note type.
pub(super) fn xen_note_name(n_type: u32) -> Option<&'static str> {
    Some(match n_type {
        XEN_ELFNOTE_INFO => "XEN_ELFNOTE_INFO",
        XEN_ELFNOTE_ENTRY => "XEN_ELFNOTE_ENTRY",
        XEN_ELFNOTE_HYPERCALL_PAGE => "XEN_ELFNOTE_HYPERCALL_PAGE",
        XEN_ELFNOTE_VIRT_BASE => "XEN_ELFNOTE_VIRT_BASE",
        XEN_ELFNOTE_PADDR_OFFSET => "XEN_ELFNOTE_PADDR_OFFSET",
        XEN_ELFNOTE_XEN_VERSION => "XEN_ELFNOTE_XEN_VERSION",
        XEN_ELFNOTE_GUEST_OS => "XEN_ELFNOTE_GUEST_OS",
        XEN_ELFNOTE_GUEST_VERSION => "XEN_ELFNOTE_GUEST_VERSION",
        XEN_ELFNOTE_LOADER => "XEN_ELFNOTE_LOADER",
        XEN_ELFNOTE_PAE_MODE => "XEN_ELFNOTE_PAE_MODE",
        XEN_ELFNOTE_FEATURES => "XEN_ELFNOTE_FEATURES",
        XEN_ELFNOTE_BSD_SYMTAB => "XEN_ELFNOTE_BSD_SYMTAB",
        XEN_ELFNOTE_HV_START_LOW => "XEN_ELFNOTE_HV_START_LOW",
        XEN_ELFNOTE_L1_MFN_VALID => "XEN_ELFNOTE_L1_MFN_VALID",
        XEN_ELFNOTE_SUSPEND_CANCEL => "XEN_ELFNOTE_SUSPEND_CANCEL",
        XEN_ELFNOTE_INIT_P2M => "XEN_ELFNOTE_INIT_P2M",
        XEN_ELFNOTE_MOD_START_PFN => "XEN_ELFNOTE_MOD_START_PFN",
        XEN_ELFNOTE_SUPPORTED_FEATURES => "XEN_ELFNOTE_SUPPORTED_FEATURES",
        XEN_ELFNOTE_PHYS32_ENTRY => "XEN_ELFNOTE_PHYS32_ENTRY",
        XEN_ELFNOTE_PHYS32_RELOC => "XEN_ELFNOTE_PHYS32_RELOC",
        XEN_ELFNOTE_CRASH_INFO => "XEN_ELFNOTE_CRASH_INFO",
        XEN_ELFNOTE_CRASH_REGS => "XEN_ELFNOTE_CRASH_REGS",
        XEN_ELFNOTE_DUMPCORE_NONE => "XEN_ELFNOTE_DUMPCORE_NONE",
        XEN_ELFNOTE_DUMPCORE_HEADER => "XEN_ELFNOTE_DUMPCORE_HEADER",
        XEN_ELFNOTE_DUMPCORE_XEN_VERSION => "XEN_ELFNOTE_DUMPCORE_XEN_VERSION",
        XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION => "XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION",
        _ => return None,
    })
}
