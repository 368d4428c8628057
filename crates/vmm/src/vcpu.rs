//! vCPU set-up: CPUID with a per-vCPU topology, the MSRs Linux expects at boot, FPU state,
//! LAPIC LINT0/LINT1, and — for the boot processor — the plan's entry registers.
//!
//! Application processors get everything but registers: with the in-kernel irqchip KVM
//! creates them in the wait-for-SIPI state, and INIT/SIPI from the boot processor's LAPIC
//! puts them in real mode at the SIPI vector.

use crate::VmmError;
use domboot_builder::{EntryState, SegmentRegister};
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_cpuid_entry2, kvm_fpu, kvm_lapic_state, kvm_msr_entry,
    kvm_segment,
};
use kvm_ioctls::{Kvm, VcpuFd};

/// KVM's private TSS (three pages) and identity-map page, in the MMIO gap below the BIOS
/// flash: nothing else lives there.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xFFFB_C000;
pub const KVM_TSS_ADDR: u64 = 0xFFFB_D000;

pub const APIC_BASE: u64 = 0xFEE0_0000;

// MSRs set at boot (values as Firecracker and QEMU give them to a fresh CPU).
pub const MSR_IA32_TSC: u32 = 0x10;
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1A0;
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2FF;
pub const MSR_STAR: u32 = 0xC000_0081;
pub const MSR_LSTAR: u32 = 0xC000_0082;
pub const MSR_CSTAR: u32 = 0xC000_0083;
pub const MSR_SYSCALL_MASK: u32 = 0xC000_0084;
pub const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRs enabled, default type write-back.
const MTRR_DEF_TYPE_WB_ENABLED: u64 = (1 << 11) | 6;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// "KVMKVMKVM\0\0\0" as CPUID returns it in EBX, ECX, EDX of leaf 0x40000000.
const KVM_SIGNATURE: [u32; 3] = [0x4B4D_564B, 0x564B_4D56, 0x0000_004D];
const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;
const KVM_CPUID_FEATURES: u32 = 0x4000_0001;

/// The CPUID template: what KVM supports, with the KVM leaves present.
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, VmmError> {
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|error| VmmError::Ioctl {
            what: "KVM_GET_SUPPORTED_CPUID",
            error,
        })?;
    let has = |c: &CpuId, f: u32| c.as_slice().iter().any(|e| e.function == f);
    if !has(&cpuid, KVM_CPUID_SIGNATURE) {
        let _ = cpuid.push(kvm_cpuid_entry2 {
            function: KVM_CPUID_SIGNATURE,
            eax: KVM_CPUID_FEATURES,
            ebx: KVM_SIGNATURE[0],
            ecx: KVM_SIGNATURE[1],
            edx: KVM_SIGNATURE[2],
            ..Default::default()
        });
    }
    if !has(&cpuid, KVM_CPUID_FEATURES) {
        let _ = cpuid.push(kvm_cpuid_entry2 {
            function: KVM_CPUID_FEATURES,
            ..Default::default()
        });
    }
    // KVM_GET_SUPPORTED_CPUID leaves out the TSC-deadline bit because the timer lives in
    // the in-kernel LAPIC, which the VMM may or may not create; domboot always does, so it
    // sets the bit as QEMU and Firecracker do. Without it Linux calibrates the LAPIC timer
    // against the PIT for 100 ms, and kernels without kvm-clock disable the LAPIC timer
    // when the two clocks drift apart during that window ("APIC timer disabled").
    if kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer) {
        for e in cpuid.as_mut_slice().iter_mut().filter(|e| e.function == 1) {
            e.ecx |= CPUID_1_ECX_TSC_DEADLINE;
        }
    }
    fill_brand_string(&mut cpuid, host_cpuid);
    Ok(cpuid)
}

/// CPUID leaves 0x80000002-0x80000004: the processor's name, 48 bytes of ASCII.
const BRAND_LEAVES: std::ops::RangeInclusive<u32> = 0x8000_0002..=0x8000_0004;

/// One CPUID leaf of the CPU this process runs on, as (EAX, EBX, ECX, EDX).
fn host_cpuid(leaf: u32) -> [u32; 4] {
    // SAFETY: CPUID exists on every x86-64 processor and only reads identification
    // registers; it has no memory effects. (The Rust used here declares `__cpuid` safe;
    // the block keeps the crate building with its rust-version, 1.85.)
    #[allow(unused_unsafe)]
    let r = unsafe { std::arch::x86_64::__cpuid(leaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Gives the guest the host processor's name, where KVM's template leaves it out.
///
/// KVM_GET_SUPPORTED_CPUID zeroes the brand-string leaves (Linux 6.1's `__do_cpuid_func`
/// has no case for them, so its default clears them). A guest then names its CPU from its
/// own family table ("AMD Hammer" in /proc/cpuinfo and the boot log). QEMU's `-cpu host`
/// copies the host's string, and so does domboot; leaves KVM did fill are kept.
fn fill_brand_string(cpuid: &mut CpuId, host: impl Fn(u32) -> [u32; 4]) {
    let highest = |c: &CpuId| {
        c.as_slice()
            .iter()
            .find(|e| e.function == 0x8000_0000)
            .map_or(0, |e| e.eax)
    };
    if highest(cpuid) < *BRAND_LEAVES.end() || host(0x8000_0000)[0] < *BRAND_LEAVES.end() {
        return;
    }
    for leaf in BRAND_LEAVES {
        let [eax, ebx, ecx, edx] = host(leaf);
        let filled = kvm_cpuid_entry2 {
            function: leaf,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        match cpuid.as_mut_slice().iter_mut().find(|e| e.function == leaf) {
            Some(e) if [e.eax, e.ebx, e.ecx, e.edx] == [0; 4] => *e = filled,
            Some(_) => {}
            // A full template has no room: the guest keeps its family-table name.
            None => {
                let _ = cpuid.push(filled);
            }
        }
    }
}

/// CPUID leaf 1, ECX bit 24: the LAPIC timer has TSC-deadline mode.
const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;

/// Bits needed to number `n` things (x2APIC topology shift width).
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// The APIC ID of vCPU `index`: the index itself. CPUID reports it ([`cpuid_for`]), and
/// the MP table and the ACPI MADT describe the processors with it.
pub fn apic_id(index: u32) -> u32 {
    index
}

/// Adjusts the template for vCPU `index` of `count`: APIC IDs, one socket of `count`
/// single-threaded cores, the hypervisor bit.
pub fn cpuid_for(template: &CpuId, index: u32, count: u32) -> CpuId {
    let mut cpuid = template.clone();
    let apic_id = apic_id(index);
    let core_bits = bits_for(count);
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                // EBX: APIC ID [31:24], logical processors per package [23:16],
                // CLFLUSH line size (8 quadwords) [15:8].
                let clflush = match e.ebx & 0xFF00 {
                    0 => 8 << 8,
                    c => c,
                };
                e.ebx = (apic_id << 24) | (count.min(255) << 16) | clflush;
                // ECX bit 31: running under a hypervisor.
                e.ecx |= 1 << 31;
                // EDX bit 28: HTT (the package field above is valid) when SMP.
                if count > 1 {
                    e.edx |= 1 << 28;
                } else {
                    e.edx &= !(1 << 28);
                }
            }
            4 => {
                // Deterministic cache parameters: cores per package - 1 [31:26]; threads
                // sharing this cache - 1 [25:14] (all cores share L3, one thread has L1/L2).
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { count - 1 } else { 0 };
                e.eax =
                    (e.eax & 0x3FFF) | ((count - 1).min(63) << 26) | ((sharing.min(0xFFF)) << 14);
            }
            0xB | 0x1F => {
                // Extended topology: level 0 = SMT (1 thread), level 1 = core.
                e.edx = apic_id;
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = core_bits;
                        e.ebx = count;
                        e.ecx = (2 << 8) | 1;
                    }
                    n => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = n;
                    }
                }
            }
            0x8000_0008 => {
                // AMD: NC (cores - 1) [7:0], ApicIdCoreIdSize [15:12].
                e.ecx = (e.ecx & !0xF0FF) | (count - 1).min(255) | (core_bits << 12);
            }
            0x8000_001E => {
                // AMD: extended APIC ID; compute unit = core, one thread per core; node 0.
                e.eax = apic_id;
                e.ebx = apic_id & 0xFF;
                e.ecx = 0;
            }
            _ => {}
        }
    }
    cpuid
}

/// The boot MSRs.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_WB_ENABLED),
    ]
    .iter()
    .map(|&(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect()
}

fn io(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |error| VmmError::Ioctl { what, error }
}

/// Sets MSRs; KVM stops at the first one it refuses, which we name.
pub fn set_msrs(vcpu: &VcpuFd) -> Result<(), VmmError> {
    let entries = boot_msrs();
    let msrs = Msrs::from_entries(&entries).map_err(|e| VmmError::Setup(format!("MSRs: {e:?}")))?;
    let written = vcpu.set_msrs(&msrs).map_err(io("KVM_SET_MSRS"))?;
    if written != entries.len() {
        return Err(VmmError::Setup(format!(
            "KVM refused MSR {:#x} (set {written} of {} boot MSRs)",
            entries[written].index,
            entries.len()
        )));
    }
    Ok(())
}

pub fn set_fpu(vcpu: &VcpuFd) -> Result<(), VmmError> {
    let fpu = kvm_fpu {
        fcw: 0x37F,
        mxcsr: 0x1F80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(io("KVM_SET_FPU"))
}

fn lapic_reg(l: &kvm_lapic_state, at: usize) -> u32 {
    let b = |i: usize| l.regs[at + i] as u8;
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

fn set_lapic_reg(l: &mut kvm_lapic_state, at: usize, v: u32) {
    for (i, byte) in v.to_le_bytes().iter().enumerate() {
        l.regs[at + i] = *byte as _;
    }
}

fn delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// LINT0 = ExtINT (the PIC's output), LINT1 = NMI: what the MP table says and Linux
/// expects of virtual wire mode.
pub fn set_lint(vcpu: &VcpuFd) -> Result<(), VmmError> {
    let mut l = vcpu.get_lapic().map_err(io("KVM_GET_LAPIC"))?;
    let lvt0 = lapic_reg(&l, APIC_LVT0);
    let lvt1 = lapic_reg(&l, APIC_LVT1);
    set_lapic_reg(&mut l, APIC_LVT0, delivery_mode(lvt0, APIC_MODE_EXTINT));
    set_lapic_reg(&mut l, APIC_LVT1, delivery_mode(lvt1, APIC_MODE_NMI));
    vcpu.set_lapic(&l).map_err(io("KVM_SET_LAPIC"))
}

pub fn kvm_seg(s: &SegmentRegister) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: u8::from(s.present),
        dpl: s.dpl,
        db: u8::from(s.db),
        s: u8::from(s.s),
        l: u8::from(s.l),
        g: u8::from(s.g),
        avl: 0,
        unusable: u8::from(!s.present),
        padding: 0,
    }
}

/// A busy 32-bit TSS at 0 with limit 0x67 (type 11; in long mode the same type means a busy
/// 64-bit TSS). Protected-mode entry needs a usable TR; nothing ever switches tasks.
pub fn boot_tr() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0x67,
        selector: 0,
        type_: 11,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The boot processor's registers from the plan.
pub fn set_entry_state(vcpu: &VcpuFd, e: &EntryState) -> Result<(), VmmError> {
    let mut sregs = vcpu.get_sregs().map_err(io("KVM_GET_SREGS"))?;
    sregs.cs = kvm_seg(&e.cs);
    let ds = kvm_seg(&e.ds);
    sregs.ds = ds;
    sregs.es = ds;
    sregs.fs = ds;
    sregs.gs = ds;
    sregs.ss = ds;
    sregs.tr = boot_tr();
    sregs.ldt = kvm_segment {
        selector: 0,
        base: 0,
        limit: 0xFFFF,
        type_: 2,
        present: 1,
        unusable: 1,
        ..Default::default()
    };
    sregs.gdt.base = e.gdt_base;
    sregs.gdt.limit = e.gdt_limit;
    // No IDT: any exception before the guest installs one is a triple fault.
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = e.cr0;
    sregs.cr3 = e.cr3;
    sregs.cr4 = e.cr4;
    sregs.efer = e.efer;
    vcpu.set_sregs(&sregs).map_err(io("KVM_SET_SREGS"))?;
    let mut regs = vcpu.get_regs().map_err(io("KVM_GET_REGS"))?;
    regs.rip = e.rip;
    regs.rsp = e.rsp;
    regs.rax = e.rax;
    regs.rbx = e.rbx;
    regs.rcx = e.rcx;
    regs.rdx = e.rdx;
    regs.rsi = e.rsi;
    regs.rdi = e.rdi;
    regs.rbp = e.rbp;
    regs.rflags = e.rflags | 2;
    vcpu.set_regs(&regs).map_err(io("KVM_SET_REGS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> CpuId {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xFF00_0800,
                edx: 1 << 28,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xB,
                index: 0,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xB,
                index: 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x8000_0008,
                ecx: 0x3007,
                ..Default::default()
            },
        ];
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn topology_per_vcpu() {
        let c = cpuid_for(&template(), 3, 4);
        let e = c.as_slice();
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xFF, 4);
        assert_ne!(e[0].edx & (1 << 28), 0);
        assert_ne!(e[0].ecx & (1 << 31), 0);
        assert_eq!((e[1].ebx, e[1].ecx, e[1].edx), (1, 0x100, 3));
        assert_eq!((e[2].eax, e[2].ebx, e[2].ecx), (2, 4, 0x201));
        assert_eq!(e[3].ecx & 0xFF, 3);
        assert_eq!((e[3].ecx >> 12) & 0xF, 2);
        let up = cpuid_for(&template(), 0, 1);
        assert_eq!(up.as_slice()[0].edx & (1 << 28), 0);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(5), 3);
    }

    /// Leaf 1 of the template offers the TSC-deadline timer whenever KVM's LAPIC has one.
    #[test]
    fn the_template_offers_the_tsc_deadline_timer() {
        let (kvm, _) = crate::kvm::open().expect("a usable /dev/kvm");
        let template = supported_cpuid(&kvm).unwrap();
        let leaf1 = template
            .as_slice()
            .iter()
            .find(|e| e.function == 1)
            .unwrap();
        let has_timer = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
        assert_eq!(leaf1.ecx & CPUID_1_ECX_TSC_DEADLINE != 0, has_timer);
        let vcpu = cpuid_for(&template, 1, 4);
        let leaf1 = vcpu.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(leaf1.ecx & CPUID_1_ECX_TSC_DEADLINE != 0, has_timer);
    }

    /// The brand-string leaves KVM zeroes get the host's name; filled ones are kept, and a
    /// template or host without the leaves is left alone.
    #[test]
    fn the_guest_gets_the_host_processors_name() {
        let leaf = |function, regs: [u32; 4]| kvm_cpuid_entry2 {
            function,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
            ..Default::default()
        };
        let mut name = [0u8; 48];
        name[..23].copy_from_slice(b"AMD Test Processor 9000");
        let host = |l: u32| match l {
            0x8000_0000 => [0x8000_0008, 0, 0, 0],
            0x8000_0002..=0x8000_0004 => {
                let at = (l - 0x8000_0002) as usize * 16;
                let word = |i: usize| {
                    u32::from_le_bytes(name[at + 4 * i..at + 4 * i + 4].try_into().unwrap())
                };
                [word(0), word(1), word(2), word(3)]
            }
            _ => [0; 4],
        };
        let kept = [1, 2, 3, 4];
        let mut cpuid = CpuId::from_entries(&[
            leaf(0x8000_0000, [0x8000_0008, 0, 0, 0]),
            leaf(0x8000_0002, [0; 4]),
            leaf(0x8000_0003, kept),
        ])
        .unwrap();
        fill_brand_string(&mut cpuid, host);
        let regs = |f| {
            let e = cpuid.as_slice().iter().find(|e| e.function == f).unwrap();
            [e.eax, e.ebx, e.ecx, e.edx]
        };
        assert_eq!(regs(0x8000_0002), host(0x8000_0002));
        assert_eq!(regs(0x8000_0003), kept);
        assert_eq!(regs(0x8000_0004), host(0x8000_0004));
        let bytes: Vec<u8> = regs(0x8000_0002)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(&bytes[..16], b"AMD Test Process");

        // A template whose highest extended leaf is below the brand leaves stays as it is.
        let mut short = CpuId::from_entries(&[leaf(0x8000_0000, [0x8000_0001, 0, 0, 0])]).unwrap();
        fill_brand_string(&mut short, host);
        assert_eq!(short.as_slice().len(), 1);
        // So does one on a host without them.
        let mut cpuid = CpuId::from_entries(&[leaf(0x8000_0000, [0x8000_0008, 0, 0, 0])]).unwrap();
        fill_brand_string(&mut cpuid, |_| [0x8000_0001, 0, 0, 0]);
        assert_eq!(cpuid.as_slice().len(), 1);
    }

    /// The real template on this machine's KVM names the host's processor, as CPUID on the
    /// host does.
    #[test]
    fn the_template_names_the_host_processor() {
        let (kvm, _) = crate::kvm::open().expect("a usable /dev/kvm");
        let template = supported_cpuid(&kvm).unwrap();
        for l in BRAND_LEAVES {
            let e = template
                .as_slice()
                .iter()
                .find(|e| e.function == l)
                .unwrap();
            assert_eq!([e.eax, e.ebx, e.ecx, e.edx], host_cpuid(l), "leaf {l:#x}");
        }
    }

    /// On this machine's KVM: the state set is the state KVM holds (PVM accepts all of it).
    #[test]
    fn kvm_holds_the_state_we_set() {
        let (kvm, pvm) = crate::kvm::open().expect("a usable /dev/kvm");
        let vm = kvm.create_vm().unwrap();
        vm.create_irq_chip().unwrap();
        let template = supported_cpuid(&kvm).unwrap();
        let fd = vm.create_vcpu(1).unwrap();
        fd.set_cpuid2(&cpuid_for(&template, 1, 2)).unwrap();
        set_msrs(&fd).unwrap();
        set_fpu(&fd).unwrap();
        set_lint(&fd).unwrap();
        let plan = crate::tests::empty_plan();
        let mut entry = plan.entry.clone();
        let flat = |code: bool| SegmentRegister {
            selector: if code { 0x10 } else { 0x18 },
            base: 0,
            limit: 0xFFFF_FFFF,
            type_: if code { 0xB } else { 0x3 },
            dpl: 0,
            present: true,
            s: true,
            db: true,
            l: false,
            g: true,
        };
        entry.cs = flat(true);
        entry.ds = flat(false);
        entry.rip = 0x20_0000;
        entry.rbx = 0x10_1000;
        entry.gdt_base = 0x10_0040;
        entry.gdt_limit = 31;
        set_entry_state(&fd, &entry).unwrap();

        let s = fd.get_sregs().unwrap();
        assert_eq!(
            (s.tr.base, s.tr.limit, s.tr.type_, s.tr.present, s.tr.s),
            (0, 0x67, 11, 1, 0)
        );
        assert_eq!((s.cs.selector, s.cs.db, s.cs.l), (0x10, 1, 0));
        assert_eq!((s.ss.selector, s.es.selector), (0x18, 0x18));
        assert_eq!((s.gdt.base, s.gdt.limit), (0x10_0040, 31));
        assert_eq!((s.idt.base, s.idt.limit), (0, 0));
        assert_eq!(s.cr0 & 1, 1);
        let r = fd.get_regs().unwrap();
        assert_eq!((r.rip, r.rbx, r.rflags & 0x200), (0x20_0000, 0x10_1000, 0));

        let l = fd.get_lapic().unwrap();
        assert_eq!((lapic_reg(&l, APIC_LVT0) >> 8) & 7, APIC_MODE_EXTINT);
        assert_eq!((lapic_reg(&l, APIC_LVT1) >> 8) & 7, APIC_MODE_NMI);

        let mut msrs = Msrs::from_entries(&[
            kvm_msr_entry {
                index: MSR_IA32_MISC_ENABLE,
                ..Default::default()
            },
            kvm_msr_entry {
                index: MSR_MTRR_DEF_TYPE,
                ..Default::default()
            },
        ])
        .unwrap();
        assert_eq!(fd.get_msrs(&mut msrs).unwrap(), 2);
        assert_eq!(msrs.as_slice()[0].data & 1, 1);
        assert_eq!(msrs.as_slice()[1].data, MTRR_DEF_TYPE_WB_ENABLED);

        let c = fd.get_cpuid2(KVM_MAX_CPUID_ENTRIES).unwrap();
        let leaf1 = c.as_slice().iter().find(|e| e.function == 1).unwrap();
        assert_eq!(leaf1.ebx >> 24, 1, "APIC ID of vCPU 1");
        assert!(
            c.as_slice().iter().any(
                |e| e.function == KVM_CPUID_SIGNATURE && [e.ebx, e.ecx, e.edx] == KVM_SIGNATURE
            )
        );
        let f = fd.get_fpu().unwrap();
        assert_eq!(f.fcw, 0x37F);
        // Measured on PVM: KVM_GET_FPU reads MXCSR back as 0 after KVM_SET_FPU set 0x1F80
        // (the guest cannot check: PVM emulates it, and KVM's emulator lacks STMXCSR).
        if !pvm {
            assert_eq!(f.mxcsr, 0x1F80);
        }
    }

    #[test]
    fn lint_modes() {
        assert_eq!(delivery_mode(0x0001_0000, APIC_MODE_EXTINT), 0x0001_0700);
        assert_eq!(delivery_mode(0x0001_0700, APIC_MODE_NMI), 0x0001_0400);
    }
}
