//! Property tests of the setup-header parser, and the bzImage facts of real kernels.

use domboot_testkit as support;

use domboot_formats::bzimage::{BzImage, SetupHeader};
use domboot_formats::{Format, FormatError};
use proptest::prelude::*;

/// Field offsets and widths of every header field from 2.01 on, with the minor version
/// that introduced it.
const GATED: &[(usize, usize, u8)] = &[
    (0x224, 2, 1),
    (0x226, 1, 2),
    (0x227, 1, 2),
    (0x228, 4, 2),
    (0x22C, 4, 3),
    (0x230, 4, 5),
    (0x234, 1, 5),
    (0x235, 1, 10),
    (0x236, 2, 12),
    (0x238, 4, 6),
    (0x23C, 4, 7),
    (0x240, 8, 7),
    (0x248, 4, 8),
    (0x24C, 4, 8),
    (0x250, 8, 9),
    (0x258, 8, 10),
    (0x260, 4, 10),
    (0x264, 4, 11),
    (0x268, 4, 15),
];

fn image(minor: u8, fields: &[u8], len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len.max(0x400)];
    d[0x1F1..0x1F1 + fields.len().min(0x7B)].copy_from_slice(&fields[..fields.len().min(0x7B)]);
    d[0x1FE] = 0x55;
    d[0x1FF] = 0xAA;
    d[0x200] = 0xEB;
    d[0x201] = 0x6A;
    d[0x202..0x206].copy_from_slice(b"HdrS");
    d[0x206] = minor;
    d[0x207] = 2;
    d
}

proptest! {
    /// Any bytes after a valid magic either parse or give an error; never a panic.
    #[test]
    fn header_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..0x1200), minor in 0u8..20) {
        let mut d = data;
        if d.len() >= 0x208 {
            d[0x202..0x206].copy_from_slice(b"HdrS");
            d[0x206] = minor;
            d[0x207] = 2;
        }
        let _ = SetupHeader::parse(&d);
        let _ = BzImage::parse(&d);
    }

    /// Every gated field is present exactly from its protocol version on, with the value
    /// written at its offset.
    #[test]
    fn gated_fields_follow_the_version(minor in 0u8..=15, fill in any::<u8>()) {
        let mut d = image(minor, &[], 0x1000);
        for (off, width, _) in GATED {
            for b in &mut d[*off..off + width] {
                *b = fill;
            }
        }
        let h = SetupHeader::parse(&d).unwrap();
        let v = serde_json::to_value(&h).unwrap();
        let names = [
            "heap_end_ptr", "ext_loader_ver", "ext_loader_type", "cmd_line_ptr",
            "initrd_addr_max", "kernel_alignment", "relocatable_kernel", "min_alignment",
            "xloadflags", "cmdline_size", "hardware_subarch", "hardware_subarch_data",
            "payload_offset", "payload_length", "setup_data", "pref_address", "init_size",
            "handover_offset", "kernel_info_offset",
        ];
        for (name, (off, width, since)) in names.iter().zip(GATED) {
            let present = !v[name].is_null();
            prop_assert_eq!(present, minor >= *since, "{} in 2.{:02}", name, minor);
            if present && v[name].is_u64() {
                let mut expect = 0u64;
                for i in 0..*width {
                    expect |= u64::from(fill) << (8 * i);
                }
                prop_assert_eq!(v[name].as_u64().unwrap(), expect, "{} at {:#x}", name, off);
            }
        }
    }

    /// A payload is accepted exactly when it lies inside the protected-mode code.
    #[test]
    fn payload_bounds(setup_sects in 1u8..8, extra in 0usize..0x2000, off in 0u32..0x3000, len in 1u32..0x3000) {
        let total = (usize::from(setup_sects) + 1) * 512 + 1 + extra;
        let mut d = image(15, &[setup_sects], total);
        d.truncate(total);
        d[0x248..0x24C].copy_from_slice(&off.to_le_bytes());
        d[0x24C..0x250].copy_from_slice(&len.to_le_bytes());
        let pm = (total - (usize::from(setup_sects) + 1) * 512) as u64;
        match BzImage::parse(&d) {
            Ok(b) => {
                let p = b.payload.unwrap();
                prop_assert!(u64::from(off) + u64::from(len) <= pm);
                prop_assert_eq!(p.length, u64::from(len));
            }
            Err(FormatError::Field { field, .. }) => {
                prop_assert_eq!(field, "payload_offset + payload_length");
                prop_assert!(u64::from(off) + u64::from(len) > pm);
            }
            Err(e) => prop_assert!(false, "unexpected error {}", e),
        }
    }
}

#[test]
fn setup_sects_beyond_the_file_is_an_error_naming_the_field() {
    let mut d = image(15, &[60], 0x1000);
    d.truncate(0x1000);
    let err = BzImage::parse(&d).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Field {
                field: "setup_sects",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("past the end of the file"),
        "{err}"
    );
}

#[test]
fn a_bad_kernel_info_is_rejected() {
    let mut d = image(15, &[1], 0x1000);
    d[0x268..0x26C].copy_from_slice(&0x100u32.to_le_bytes());
    let err = BzImage::parse(&d).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::BadMagic {
                what: "kernel_info",
                ..
            }
        ),
        "{err}"
    );
    d[0x268..0x26C].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let err = BzImage::parse(&d).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Field {
                field: "kernel_info_offset",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn tiny_kernels_have_the_expected_headers() {
    for &(name, _, is64, relocatable, _) in support::TINY_KERNELS {
        let data = std::fs::read(support::shared_kernel(&format!("bzImage-{name}"))).unwrap();
        let b = BzImage::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.protocol_version.to_string(), "2.15", "{name}");
        assert_eq!(b.relocatable, relocatable, "{name}");
        assert_eq!(b.xloadflags.kernel_64(), is64, "{name}");
        assert_eq!(b.entry_points.entry64_offset.is_some(), is64, "{name}");
        assert_eq!(b.pref_address, Some(0x100_0000), "{name}");
        assert!(b.loadflags.loaded_high(), "{name}");
        assert!(
            b.kernel_version.as_deref().unwrap().starts_with("6.1."),
            "{name}"
        );
        assert!(b.init_size.unwrap() as usize > data.len(), "{name}");
        let p = b.payload.as_ref().unwrap();
        assert!(p.file_offset + p.length <= data.len() as u64, "{name}");
        assert!(b.kernel_info.is_some(), "{name}");
        assert!(
            b.efi_stub.is_none(),
            "{name}: tiny kernels have no EFI stub"
        );
        assert!(b.warnings.is_empty(), "{name}: {:?}", b.warnings);
    }
}

#[test]
fn debian_kernels_are_relocatable_2_15_with_an_efi_stub() {
    for flavour in ["cloud", "generic"] {
        let k = support::debian_kernel(flavour);
        let data = std::fs::read(&k.vmlinuz).unwrap();
        let b = BzImage::parse(&data).unwrap();
        assert_eq!(b.protocol_version.to_string(), "2.15");
        assert!(b.relocatable);
        assert!(b.xloadflags.kernel_64() && b.xloadflags.can_be_loaded_above_4g());
        let version = b.kernel_version.clone().unwrap();
        assert!(
            version.starts_with(&k.release),
            "{version} vs {}",
            k.release
        );
        assert!(
            version.contains(&k.package_version),
            "{version} vs {}",
            k.package_version
        );
        let stub = b
            .efi_stub
            .as_ref()
            .expect("Debian kernels have an EFI stub");
        assert_eq!(stub.machine_name, "x86_64");
        assert!(b.entry_points.efi_handover_64_offset.is_some());
        assert_eq!(
            domboot_formats::Registry::default()
                .probe(&data)
                .map(|(_, f)| f),
            Some(Format::BzImage),
            "an EFI-stub bzImage is a bzImage, not a plain PE"
        );
    }
}
