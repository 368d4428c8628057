/* kvm_pin: holds, or churns, KVM VMs in the nested bench's outer guest. The remedy for,
 * and the experiment behind, the outer guest's freezes.
 *
 * Every freeze QEMU's monitor caught had the outer vCPUs in the outer kernel's
 * asm_exc_int3 / iretq, at a static-branch site in __schedule: the outer kernel was
 * patching its own code with INT3 (text_poke_bp). KVM flips such keys when the first VM
 * is created and the last one destroyed (the preempt notifier key __schedule tests), and
 * when a vCPU's LAPIC is created and enabled (apic_hw_disabled, apic_sw_disabled). So each
 * inner run made the outer kernel rewrite __schedule twice, and QEMU TCG's emulation of
 * that cross-vCPU code modification sometimes never converges: both vCPUs spin, the guest
 * is silent (no watchdog, no heartbeat).
 *
 *   kvm_pin hold      keeps one VM, with an in-kernel irqchip and a vCPU whose LAPIC is
 *                     never enabled, until killed: the keys stay on, inner runs only move
 *                     their counts, and the outer kernel's code is never patched again;
 *   kvm_pin churn N   creates and destroys N such VMs, flipping the keys 2N times.
 *
 * Measured (session 12, `nested -- sh churn.sh`): `churn 3000` froze 3 of 3 outer boots,
 * before its first 100 VMs; after `hold`, 3000 VMs in 175 s and no freeze.
 *
 * C, built with gcc -static like vsock_echo.c: three argument-less ioctls, and a binary the
 * outer guest runs without libraries. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVMIO 0xAE
#define KVM_CREATE_VM _IO(KVMIO, 0x01)
#define KVM_CREATE_VCPU _IO(KVMIO, 0x41)
#define KVM_CREATE_IRQCHIP _IO(KVMIO, 0x60)

/* One VM with an in-kernel irqchip and vCPU 0; closing the two fds destroys it. */
static void create_vm(int kvm, int *vm, int *vcpu)
{
    *vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (*vm < 0 || ioctl(*vm, KVM_CREATE_IRQCHIP, 0) < 0 ||
        (*vcpu = ioctl(*vm, KVM_CREATE_VCPU, 0)) < 0) {
        fprintf(stderr, "kvm_pin: creating a VM: %s\n", strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm, vcpu;
    if (kvm < 0) {
        fprintf(stderr, "kvm_pin: /dev/kvm: %s\n", strerror(errno));
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "hold") == 0) {
        create_vm(kvm, &vm, &vcpu);
        printf("kvm_pin: holding a VM\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (argc == 3 && strcmp(argv[1], "churn") == 0) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        if (*end || n < 1) {
            fprintf(stderr, "kvm_pin: churn takes a positive count, not %s\n", argv[2]);
            return 2;
        }
        for (long i = 1; i <= n; i++) {
            create_vm(kvm, &vm, &vcpu);
            close(vcpu);
            close(vm);
            if (i % 100 == 0 || i == n) {
                printf("kvm_pin: %ld VMs created and destroyed\n", i);
                fflush(stdout);
            }
        }
        return 0;
    }
    fprintf(stderr, "usage: kvm_pin hold | kvm_pin churn N\n");
    return 2;
}
