//! `domboot plan`: show where everything goes in guest memory and how the kernel is
//! entered, without building anything.

use super::boot_args::BootArgs;
use crate::table::{Table, human_size};
use domboot_builder::BootPlan;
use std::fmt::Write;
use std::process::ExitCode;

/// Show the boot plan: memory segments, e820 map and entry vCPU state.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub boot: BootArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = args.boot.image()?.build()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn render(plan: &BootPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "protocol {}, {} of RAM",
        plan.protocol.name(),
        human_size(plan.memory_size)
    );
    let mut t = Table::new(&["segment", "start", "end", "bytes", "in memory"]);
    for s in &plan.segments {
        t.row(vec![
            s.name.clone(),
            format!("{:#x}", s.addr),
            format!("{:#x}", s.end()),
            s.data.len().to_string(),
            human_size(s.mem_size),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render(0));
    if !plan.reservations.is_empty() {
        let mut t = Table::new(&["reserved", "start", "end", "size"]);
        for r in &plan.reservations {
            t.row(vec![
                r.name.clone(),
                format!("{:#x}", r.address),
                format!("{:#x}", r.address + r.size),
                human_size(r.size),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render(0));
    }
    let mut t = Table::new(&["e820", "start", "end", "size"]);
    for e in &plan.e820 {
        t.row(vec![
            format!("{:?}", e.kind).to_lowercase(),
            format!("{:#x}", e.address),
            format!("{:#x}", e.end()),
            human_size(e.size),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render(0));
    let e = &plan.entry;
    let _ = writeln!(
        out,
        "\nentry: {:?} rip={:#x} rsi={:#x} rbx={:#x} rsp={:#x}\n       cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x} cs={:#x}{} ds={:#x} gdt={:#x}+{:#x}",
        e.mode,
        e.rip,
        e.rsi,
        e.rbx,
        e.rsp,
        e.cr0,
        e.cr3,
        e.cr4,
        e.efer,
        e.cs.selector,
        if e.cs.l { " (64-bit)" } else { " (32-bit)" },
        e.ds.selector,
        e.gdt_base,
        e.gdt_limit
    );
    out
}
