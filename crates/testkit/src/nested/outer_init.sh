#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
# With a network, move to a tmpfs first: passt sandboxes itself with pivot_root, which the
# initramfs's own root (rootfs) refuses ("Failed to sandbox process").
if [ ! -e /.on-tmpfs ] && grep -q bench.net=1 /proc/cmdline; then
    mkdir -p /newroot && mount -t tmpfs tmpfs /newroot
    for d in /* /.[!.]*; do
        case $d in /proc | /sys | /dev | /newroot | '/.[!.]*') ;; *) cp -a "$d" /newroot/ ;; esac
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev
    touch /newroot/.on-tmpfs
    umount /proc
    exec switch_root /newroot /init
fi
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
R=/dev/ttyS1
ms() { read up rest < /proc/uptime; echo $(( ${up%.*} * 1000 + 1${up#*.}0 - 1000 )); }
# The heartbeat (watch.rs, Heartbeat): while these lines come, the outer guest is alive.
(while :; do echo "@@ALIVE $(ms)" > /dev/ttyS2; sleep 2; done) &
for m in /kmod/*.ko; do insmod "$m" || echo "bench: insmod $m failed"; done
if [ -c /dev/kvm ]; then echo "@@BENCH-KVM ok" > $R; else echo "@@BENCH-KVM missing" > $R; fi
# One VM held open from here on keeps KVM's static keys on, so inner runs never make the
# outer kernel patch its own code, which QEMU TCG sometimes never finishes (kvm_pin.c).
# Creating it patches the code once; the checks start after that (@@BENCH-READY), so a
# freeze there is the set-up's, retried by the bench apart from any check's retries.
if [ -c /dev/kvm ]; then
    { /bin/kvm_pin hold > /tmp/kvm_pin.out || echo "bench: kvm_pin hold failed"; } &
    pin=$!
    i=0
    while ! grep -q holding /tmp/kvm_pin.out 2>/dev/null && kill -0 $pin 2>/dev/null &&
        [ $i -lt 600 ]; do
        sleep 0.1; i=$((i + 1))
    done
fi
echo "@@BENCH-READY" > $R
ip link set lo up
if grep -q bench.net=1 /proc/cmdline; then
    printf '%s\n' '#!/bin/sh' '[ "$1" = bound ] || exit 0' \
        'ip addr add $ip/${mask:-24} dev $interface' 'ip route add default via ${router%% *}' > /bin/dhcp-up
    chmod +x /bin/dhcp-up
    ip link set eth0 up && udhcpc -i eth0 -s /bin/dhcp-up -q -n -t 10 >/dev/null 2>&1 ||
        echo "bench: no DHCP lease on eth0"
fi
order=$(sed -n 's/.*bench\.order=\([0-9,]*\).*/\1/p' /proc/cmdline | tr , ' ')
for n in $order; do
    set -- $(grep "^$n " /bench/list)
    t=$2 name=$3
    [ -n "$name" ] || continue
    echo "@@START $name" > $R
    in=/dev/null
    [ -f /bench/checks/$n.in ] && in=/bench/checks/$n.in
    echo "bench: $name"
    t0=$(ms)
    (cd /tmp && timeout $t sh /bench/checks/$n.sh < $in > /tmp/out 2> /tmp/err)
    rc=$?
    t1=$(ms)
    {
        echo "@@BEGIN $name"
        echo "@@STATUS $rc"
        echo "@@MS $((t1 - t0))"
        echo "@@STDOUT"
        base64 < /tmp/out
        echo "@@STDERR"
        base64 < /tmp/err
        echo "@@END $name"
    } > $R
done
echo "@@BENCH-DONE" > $R
sync
poweroff -f
