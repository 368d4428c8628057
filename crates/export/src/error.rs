//! Why a plan cannot be exported: each error names the piece of the plan and the rule it breaks.

/// An error from [`crate::pvh_elf`].
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "segment `{name}` at {addr:#x} has {data_len:#x} bytes of data but a memory size of only {mem_size:#x}"
    )]
    DataLargerThanSegment {
        name: String,
        addr: u64,
        data_len: u64,
        mem_size: u64,
    },

    #[error(
        "{what} `{name}` at {start:#x} with size {size:#x} runs past the end of the address space"
    )]
    AddressOverflow {
        what: &'static str,
        name: String,
        start: u64,
        size: u64,
    },

    #[error(
        "segments `{first}` ({first_start:#x}-{first_end:#x}) and `{second}` ({second_start:#x}-{second_end:#x}) overlap"
    )]
    SegmentsOverlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
        second_end: u64,
    },

    #[error(
        "{what} `{name}` ({start:#x}-{end:#x}) is not RAM in the plan's own memory map, so no loader can be asked to place it there"
    )]
    NotInPlanRam {
        what: &'static str,
        name: String,
        start: u64,
        end: u64,
    },

    #[error(
        "no room for the boot stub ({size:#x} bytes): it needs a free, 4 KiB-aligned range of RAM in the plan's memory map between 1 MiB and {limit:#x} (below 3 GiB and outside the top 4 MiB of low RAM) that no segment or reservation uses{extra}"
    )]
    NoRoomForStub {
        size: u64,
        limit: u64,
        extra: &'static str,
    },

    #[error("{what} is at {addr:#x}, beyond 4 GiB, where the 32-bit boot stub cannot reach it")]
    Above4GiB { what: String, addr: u64 },

    #[error(
        "the {protocol} plan names no {what} address (patch_points); the boot stub needs it to hand the loader's memory map to the kernel"
    )]
    MissingPatchPoint {
        protocol: &'static str,
        what: &'static str,
    },

    #[error(
        "{what} ({start:#x}-{end:#x}) is not inside one segment of the plan, so the boot stub would patch memory that nothing loads"
    )]
    NotInSegment {
        what: &'static str,
        start: u64,
        end: u64,
    },

    #[error("unsupported entry state: {0}")]
    EntryState(String),

    #[error("the plan's page tables (CR3 {cr3:#x}) {reason}")]
    PageTables { cr3: u64, reason: String },

    #[error("too many program headers: {count} (an ELF file holds at most 65534)")]
    TooManySegments { count: usize },

    #[error(
        "the plan needs {count} kexec segments (after merging segments that share a page, and the purgatory), more than the {limit} kexec_load takes"
    )]
    TooManyKexecSegments { count: usize, limit: usize },

    #[error("the running machine's memory map cannot be handed over: {0}")]
    MachineMap(String),

    #[error("boot stub code generation failed: {0}")]
    Assembler(String),

    #[error("boot stub code is {size} bytes, more than the {limit} bytes reserved for it")]
    StubTooLarge { size: usize, limit: usize },
}

impl From<iced_x86::IcedError> for ExportError {
    fn from(e: iced_x86::IcedError) -> Self {
        ExportError::Assembler(e.to_string())
    }
}
