//! `SerialSink::Writer`: the caller's writer gets the console while the guest runs (what
//! `domboot run --exec` on KVM streams through), not after it stopped.

mod common;

use common::*;
use domboot_builder::ProtocolChoice;
use domboot_vmm::{Outcome, SerialSink, VmConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records what it is given and when the first byte came.
#[derive(Default)]
struct Recorder {
    bytes: Vec<u8>,
    first: Option<Instant>,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.first.get_or_insert_with(Instant::now);
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_gets_output_while_the_guest_still_runs() {
    // Prints a line, then spins until the timeout stops it.
    let mut g = Guest::new(64, GUEST_ADDR, DATA_OFF);
    g.stack((GUEST_ADDR + IMAGE_MEMSZ) as u32);
    g.print("streamed line\n");
    let mut spin = g.a.create_label();
    g.a.set_label(&mut spin).unwrap();
    g.a.pause().unwrap();
    g.a.jmp(spin).unwrap();
    let kernel = elf64(&g.assemble(), GUEST_ADDR, IMAGE_MEMSZ);
    let dir = tempfile::tempdir().unwrap();
    let plan = build_plan(
        dir.path(),
        &kernel,
        &[1, 2, 3],
        "console=ttyS0",
        64 * MIB,
        ProtocolChoice::Auto,
    );
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let cfg = VmConfig {
        cpus: 1,
        serial: SerialSink::Writer(recorder.clone()),
        timeout: Some(Duration::from_secs(2)),
        verbose: true,
        acpi: true,
        ..Default::default()
    };
    let outcome = domboot_vmm::run(&plan, &cfg).expect("run");
    let ended = Instant::now();
    assert!(
        matches!(outcome, Outcome::Timeout(_)),
        "{}",
        outcome.describe()
    );
    let r = recorder.lock().unwrap();
    assert_eq!(String::from_utf8_lossy(&r.bytes), "streamed line\n");
    let first = r.first.expect("the writer got bytes");
    assert!(
        ended.duration_since(first) >= Duration::from_secs(1),
        "the first byte reached the writer only {:?} before the run ended",
        ended.duration_since(first)
    );
}
