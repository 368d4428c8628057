//! The `domboot` command line. Each subcommand lives in its own module under `commands/`.

mod atomic;
mod commands;
mod run;
mod table;
mod units;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "domboot",
    version,
    about = "Linux domain builder and direct-kernel-boot VMM",
    long_about = "domboot takes x86 Linux kernels apart, builds guest domains from kernel + initrd + \
command line (or a libvirt / xl / xm / xend domain configuration) and boots them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Inspect(commands::inspect::Args),
    Extract(commands::extract::Args),
    Plan(commands::plan::Args),
    Build(commands::build::Args),
    // Boxed: the largest of the arguments by far. (A `//` comment: a doc comment here
    // would replace `run`'s own summary in `domboot --help`.)
    Run(Box<run::Args>),
    Convert(commands::convert::Args),
    Initrd(commands::initrd::Args),
    BootEntries(commands::boot_entries::Args),
    Kexec(commands::kexec::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Build(args) => commands::build::run(args),
        Command::Run(args) => run::run(*args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Initrd(args) => commands::initrd::run(args),
        Command::BootEntries(args) => commands::boot_entries::run(args),
        Command::Kexec(args) => commands::kexec::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("domboot: error: {err:#}");
            if err.downcast_ref::<run::BadInitrd>().is_some() {
                ExitCode::from(run::EXIT_BAD_INITRD)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// `domboot --help` lists each subcommand with the summary its Args documents.
    #[test]
    fn every_subcommand_has_its_own_summary_in_help() {
        let cli = Cli::command();
        let about = |name: &str| {
            let sub = cli.find_subcommand(name).unwrap();
            sub.get_about().map(|a| a.to_string()).unwrap_or_default()
        };
        assert!(
            about("run").starts_with("Boot a kernel"),
            "{}",
            about("run")
        );
        for sub in cli.get_subcommands() {
            let text = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(!text.is_empty(), "{} has no summary", sub.get_name());
            assert!(!text.contains("Boxed"), "{}: {text}", sub.get_name());
        }
    }
}
