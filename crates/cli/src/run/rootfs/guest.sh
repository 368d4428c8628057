# run --exec --rootfs host: the guest's half, sourced by /init after the settings the host
# wrote above this script (DOMBOOT_CWD, DOMBOOT_USER, DOMBOOT_HOME, DOMBOOT_PATH,
# DOMBOOT_SETPRIV and the function shares). It replaces run_cmd: mount the host's / (the
# virtiofs tag domboot-root, read-only) under a tmpfs overlay at /domboot/root, give it
# the guest's own /proc, /sys and /dev, mount each --rwdir/--rodir at its path, and run
# the command there with the host's /bin/sh in the host's current directory.
R=/domboot/root
share() {
    # share TAG PATH ro|rw: a --rodir/--rwdir, at the same path as on the host.
    /bin/busybox mount -t virtiofs -o "$3" "$1" "$R$2" ||
        { echo "domboot: cannot mount the host's $2 (virtiofs tag $1) at $2" >&2; return 1; }
}
mount_host_root() {
    /bin/busybox mkdir -p /domboot/lower /domboot/rw "$R"
    /bin/busybox mount -t virtiofs -o ro domboot-root /domboot/lower ||
        { echo "domboot: cannot mount the host's / (virtiofs tag domboot-root)" >&2; return 1; }
    # Writes go to memory: the host's files never change through /.
    /bin/busybox mount -t tmpfs -o mode=0755 domboot-rw /domboot/rw &&
        /bin/busybox mkdir -p /domboot/rw/upper /domboot/rw/work &&
        /bin/busybox mount -t overlay -o lowerdir=/domboot/lower,upperdir=/domboot/rw/upper,workdir=/domboot/rw/work overlay "$R" ||
        { echo "domboot: cannot put a tmpfs overlay over the host's /" >&2; return 1; }
    /bin/busybox mount -t proc proc "$R/proc" &&
        /bin/busybox mount -t sysfs sysfs "$R/sys" &&
        /bin/busybox mount -o bind /dev "$R/dev" &&
        /bin/busybox mkdir -p "$R/dev/pts" "$R/dev/shm" &&
        /bin/busybox mount -t devpts devpts "$R/dev/pts" &&
        /bin/busybox mount -t tmpfs -o mode=1777 shm "$R/dev/shm" ||
        { echo "domboot: cannot mount /proc, /sys and /dev over the host's /" >&2; return 1; }
    shares
}
run_cmd() {
    mount_host_root || return 1
    set -- /bin/sh -c "$(/bin/busybox cat /domboot/cmd)"
    if [ -n "$DOMBOOT_USER" ]; then
        set -- "$DOMBOOT_SETPRIV" --reuid="${DOMBOOT_USER%:*}" --regid="${DOMBOOT_USER#*:}" --clear-groups -- "$@"
    fi
    HOME=$DOMBOOT_HOME PATH=$DOMBOOT_PATH /bin/busybox chroot "$R" /bin/sh -c \
        'cd "$0" || { echo "domboot: the host'"'"'s current directory $0 is not there in the guest" >&2; exit 1; }; exec "$@"' \
        "$DOMBOOT_CWD" "$@"
}
