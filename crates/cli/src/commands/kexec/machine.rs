//! What `kexec load` reads from the machine it runs on: the running command line, the
//! firmware memory map (/sys/firmware/memmap, else /proc/iomem), the crash kernel's
//! reservation and the ACPI RSDP.

use anyhow::{Context, bail};
use domboot_export::MachineMapEntry;
use std::path::Path;

use super::LoadArgs;

pub(super) const PROC_CMDLINE: &str = "/proc/cmdline";

/// The command line `--cmdline` or `--reuse-cmdline` asks for; `None` when neither does
/// (a UKI then brings its own).
pub(super) fn given_cmdline(args: &LoadArgs) -> anyhow::Result<Option<String>> {
    if args.reuse_cmdline {
        let running = running_cmdline();
        if running.is_empty() {
            bail!("--reuse-cmdline: {PROC_CMDLINE} is empty or unreadable");
        }
        return Ok(Some(running.join(" ")));
    }
    Ok(args.cmdline.clone())
}

/// `cmdline` with the running kernel's console= options added when it names no console, so
/// the next kernel talks where this one did.
pub(super) fn with_running_console(cmdline: &str) -> String {
    let mut cmdline = cmdline.to_string();
    if !cmdline
        .split_whitespace()
        .any(|w| w.starts_with("console="))
    {
        for w in running_cmdline()
            .iter()
            .filter(|w| w.starts_with("console="))
        {
            if !cmdline.is_empty() {
                cmdline.push(' ');
            }
            cmdline.push_str(w);
        }
    }
    cmdline
}

/// The running kernel's command line, word by word, without the boot loader's BOOT_IMAGE=.
fn running_cmdline() -> Vec<String> {
    std::fs::read_to_string(PROC_CMDLINE)
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| !w.starts_with("BOOT_IMAGE="))
        .map(str::to_string)
        .collect()
}

/// e820 type of a `/sys/firmware/memmap` or `/proc/iomem` name.
pub(super) fn map_kind(name: &str) -> Option<u32> {
    Some(match name.trim() {
        "System RAM" => 1,
        "Reserved" | "reserved" => 2,
        "ACPI Tables" => 3,
        "ACPI Non-volatile Storage" => 4,
        "Unusable memory" => 5,
        "Persistent Memory (legacy)" => 12,
        "Persistent Memory" => 7,
        "Soft Reserved" => 0xefff_ffff,
        _ => return None,
    })
}

pub(super) fn parse_hex(text: &str, what: &Path) -> anyhow::Result<u64> {
    let t = text.trim();
    u64::from_str_radix(t.trim_start_matches("0x"), 16)
        .with_context(|| format!("{}: {t:?} is not a hex address", what.display()))
}

/// The firmware memory map: /sys/firmware/memmap, else the top level of /proc/iomem; and
/// which of the two it came from.
pub(super) fn machine_map() -> anyhow::Result<(Vec<MachineMapEntry>, &'static str)> {
    let mut source = "/sys/firmware/memmap";
    let mut map = Vec::new();
    let dir = Path::new("/sys/firmware/memmap");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let read = |f: &str| {
                std::fs::read_to_string(p.join(f))
                    .with_context(|| format!("{}", p.join(f).display()))
            };
            let start = parse_hex(&read("start")?, &p.join("start"))?;
            let end = parse_hex(&read("end")?, &p.join("end"))?;
            let Some(kind) = map_kind(&read("type")?) else {
                continue;
            };
            if end >= start {
                map.push(MachineMapEntry {
                    addr: start,
                    size: end - start + 1,
                    kind,
                });
            }
        }
    }
    if map.is_empty() {
        source = "/proc/iomem";
        let iomem = Path::new("/proc/iomem");
        let text = std::fs::read_to_string(iomem)
            .with_context(|| format!("{} (no /sys/firmware/memmap either)", iomem.display()))?;
        for line in text.lines().filter(|l| !l.starts_with(' ')) {
            let Some((range, name)) = line.split_once(" : ") else {
                continue;
            };
            let Some((s, e)) = range.split_once('-') else {
                continue;
            };
            let (start, end) = (parse_hex(s, iomem)?, parse_hex(e, iomem)?);
            if let Some(kind) = map_kind(name) {
                map.push(MachineMapEntry {
                    addr: start,
                    size: end.saturating_sub(start) + 1,
                    kind,
                });
            }
        }
    }
    let map = merge_map(map);
    if !map.iter().any(|e| e.kind == 1 && e.addr + e.size > 0) || map.iter().all(|e| e.addr == 0) {
        bail!(
            "cannot read this machine's memory map from /sys/firmware/memmap or /proc/iomem (as root, /proc/iomem shows real addresses)"
        );
    }
    Ok((map, source))
}

/// Sorts the map and merges entries of one type that touch or overlap (EFI machines list
/// many small ones; the next kernel's boot_params hold at most 128).
pub(super) fn merge_map(mut map: Vec<MachineMapEntry>) -> Vec<MachineMapEntry> {
    map.sort_by_key(|e| (e.addr, e.kind));
    let mut out: Vec<MachineMapEntry> = Vec::with_capacity(map.len());
    for e in map.into_iter().filter(|e| e.size > 0) {
        match out.last_mut() {
            Some(last) if last.kind == e.kind && e.addr <= last.addr + last.size => {
                let end = (last.addr + last.size).max(e.addr.saturating_add(e.size));
                last.size = end - last.addr;
            }
            _ => out.push(e),
        }
    }
    out
}

/// Ranges the running kernel keeps for itself that kexec must not load into ("Crash
/// kernel" in /proc/iomem).
pub(super) fn crash_ranges() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/iomem").unwrap_or_default();
    text.lines()
        .filter(|l| l.trim_start().contains(": Crash kernel"))
        .filter_map(|l| {
            let (range, _) = l.trim().split_once(" : ")?;
            let (s, e) = range.split_once('-')?;
            let s = u64::from_str_radix(s, 16).ok()?;
            let e = u64::from_str_radix(e, 16).ok()?;
            (e > s).then_some((s, e + 1))
        })
        .collect()
}

/// The ACPI RSDP: the EFI system table's, else the one the running kernel was handed in
/// its boot_params; 0 when neither knows (the next kernel then searches the BIOS areas,
/// as it did on this boot).
pub(super) fn machine_rsdp() -> u64 {
    if let Ok(text) = std::fs::read_to_string("/sys/firmware/efi/systab") {
        for key in ["ACPI20=", "ACPI="] {
            if let Some(v) = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
            {
                return v;
            }
        }
    }
    const BP_ACPI_RSDP: usize = 0x70;
    match std::fs::read("/sys/kernel/boot_params/data") {
        Ok(bp) if bp.len() >= BP_ACPI_RSDP + 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bp[BP_ACPI_RSDP..BP_ACPI_RSDP + 8]);
            u64::from_le_bytes(b)
        }
        _ => 0,
    }
}

pub(super) const RAM: u32 = 1;
pub(super) const MIB: u64 = 1 << 20;
/// The least RAM from 0 a crash kernel's reservation must leave below it for the domain
/// to be laid out there instead of around it.
pub(super) const MIN_BELOW_CRASH: u64 = 256 * MIB;

pub(super) fn in_ram(map: &[MachineMapEntry], start: u64, end: u64) -> bool {
    // RAM entries may be split; walk them in order.
    let mut cur = start;
    loop {
        if cur >= end {
            return true;
        }
        match map
            .iter()
            .find(|e| e.kind == RAM && e.addr <= cur && cur < e.addr + e.size)
        {
            Some(e) => cur = e.addr + e.size,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: u64, size: u64, kind: u32) -> MachineMapEntry {
        MachineMapEntry { addr, size, kind }
    }

    #[test]
    fn adjacent_entries_of_one_type_merge() {
        let map = merge_map(vec![
            e(0x10_0000, 0x10_0000, RAM),
            e(0, 0x9_f000, RAM),
            e(0x20_0000, 0x10_0000, RAM),
            e(0x30_0000, 0x1000, 2),
            e(0x30_1000, 0x1000, RAM),
        ]);
        assert_eq!(
            map,
            vec![
                e(0, 0x9_f000, RAM),
                e(0x10_0000, 0x20_0000, RAM),
                e(0x30_0000, 0x1000, 2),
                e(0x30_1000, 0x1000, RAM),
            ]
        );
    }

    #[test]
    fn ram_check_walks_split_entries_and_stops_at_holes() {
        let map = [
            e(0x10_0000, 0x10_0000, RAM),
            e(0x20_0000, 0x10_0000, RAM),
            e(0x30_0000, 0x1000, 2),
        ];
        assert!(in_ram(&map, 0x18_0000, 0x28_0000));
        assert!(!in_ram(&map, 0x28_0000, 0x30_1000));
        assert!(!in_ram(&map, 0, 0x1000));
        assert_eq!(map_kind("System RAM"), Some(RAM));
        assert_eq!(map_kind("ACPI Non-volatile Storage"), Some(4));
        assert_eq!(map_kind("PCI Bus 0000:00"), None);
    }
}
