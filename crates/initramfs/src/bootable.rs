//! What makes a busybox image bootable on its own: an /init that mounts /proc, /sys and
//! /dev and starts a shell on the console, the mount points, and the two device nodes the
//! kernel needs before devtmpfs is mounted (/dev/console for init's stdio, /dev/null).
//!
//! Without /init the kernel panics ("No working init found"); without /dev/console init
//! runs with no stdin, stdout or stderr.

use crate::builder::Initramfs;

/// Ends the VM when the shell exits: `reboot -f` (domboot and `qemu -no-reboot` treat a
/// reset as the end; a tinyconfig kernel without ACPI cannot power off).
pub const INIT: &str = r#"#!/bin/busybox sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=${TERM:-linux}
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null || /bin/busybox mdev -s
/bin/busybox mkdir -p /dev/pts /tmp /root
/bin/busybox mount -t devpts devpts /dev/pts 2>/dev/null
/bin/busybox mount -t tmpfs tmpfs /tmp 2>/dev/null
# The host terminal's size, which a serial line cannot carry: `domboot run` passes it as
# domboot.winsize=ROWSxCOLS.
ws=$(/bin/busybox sed -n 's/.*domboot\.winsize=\([0-9]*x[0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$ws" ]; then
    /bin/busybox stty -F /dev/console rows "${ws%x*}" cols "${ws#*x}" 2>/dev/null
fi
cd /root
echo "busybox shell: 'exit' ends the VM"
# cttyhack opens the console's real tty, so the shell gets job control and Ctrl-C.
# The interactive shell is not the session leader: when a session leader exits, Linux
# hangs its serial tty up, which throws away whatever the UART has not sent yet (a slow
# TCG guest lost the shell's last line that way). The leader, `sh -c`, first waits with
# TCSADRAIN (stty setting the tty's own settings again) until the UART has sent it all.
/bin/busybox setsid /bin/busybox cttyhack /bin/busybox sh -c \
    '/bin/sh -l; trap "" TTOU; /bin/busybox stty "$(/bin/busybox stty -g)" 2>/dev/null'
/bin/busybox sync
/bin/busybox reboot -f
"#;

impl Initramfs {
    /// Adds `/init` ([`INIT`]), `/proc`, `/sys`, `/tmp`, `/root` and the essential device
    /// nodes. The image needs a busybox ([`Initramfs::busybox`]) to run it.
    pub fn bootable_shell(self) -> Self {
        self.essential_dev()
            .dir("/proc", 0o555)
            .dir("/sys", 0o555)
            .dir("/tmp", 0o1777)
            .dir("/root", 0o700)
            .file("/init", 0o755, INIT.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Compression, Initramfs, Kind};

    #[test]
    fn has_init_mount_points_and_console() {
        let fs = Initramfs::new().bootable_shell();
        assert!(matches!(
            fs.get("init").map(|e| &e.kind),
            Some(Kind::File(_))
        ));
        for dir in ["proc", "sys", "dev", "tmp", "root"] {
            assert!(
                matches!(fs.get(dir).map(|e| &e.kind), Some(Kind::Dir)),
                "{dir}"
            );
        }
        assert!(matches!(
            fs.get("dev/console").map(|e| &e.kind),
            Some(Kind::Special(_))
        ));
        assert_eq!(fs.get("init").unwrap().mode & 0o777, 0o755);
        assert!(!fs.to_bytes(Compression::None).unwrap().is_empty());
    }
}
