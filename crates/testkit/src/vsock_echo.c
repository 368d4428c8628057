/* vsock_echo: both ends of the vsock echo checks (busybox has no vsock tools).
 *
 *   vsock_echo server PORT           guest: accept one vsock connection on PORT, echo
 *                                    what arrives until EOF
 *   vsock_echo client CID PORT [N]   guest: connect to CID:PORT, send stdin, print what
 *                                    comes back until the peer's EOF
 *   vsock_echo unix-server PATH      host: listen on the Unix socket PATH, accept one
 *                                    connection, echo until EOF
 *   vsock_echo unix-client PATH PORT [N]
 *                                    host: Firecracker's hybrid vsock handshake on PATH
 *                                    (CONNECT PORT, expect OK; retried for 120 s while
 *                                    the guest is not listening yet), then as client
 *   vsock_echo cid                   guest: print the local CID (/dev/vsock's ioctl)
 *
 * A client ends its sending with a half-close (shutdown SHUT_WR) and reads until the
 * peer's EOF; with N it sends no half-close, stops once N bytes came back and closes
 * (for a peer that passes no half-close on).
 *
 * Exit status 0 on success, 1 on any failure (with a message on stderr). Compiled
 * static at test time (gcc -static -O2).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static int fail(const char *what) {
    fprintf(stderr, "vsock_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Echoes `fd` back to itself until EOF. */
static void echo(int fd) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("read");
        if (n == 0)
            break;
        if (write_all(fd, buf, (size_t)n) < 0)
            fail("write");
    }
    close(fd);
}

/* Stdin to `fd` (then half-close), `fd` to stdout until its EOF, both at once: the
 * socket is non-blocking, so a peer that echoes (and stops reading while its writes
 * wait for us) never deadlocks with our writes. With `expect` >= 0: no half-close, and
 * done once `expect` bytes came back. */
static void relay(int fd, long long expect) {
    static char in[65536], out[65536];
    size_t pending = 0, off = 0;
    long long got = 0;
    int in_open = 1;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        fail("fcntl");
    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN | (pending ? POLLOUT : 0), 0}, {0, POLLIN, 0}};
        int nfds = in_open && !pending ? 2 : 1;
        if (poll(p, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail("poll");
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(fd, out, sizeof out);
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                fail("read socket");
            if (n == 0)
                break;
            if (n > 0 && write_all(1, out, (size_t)n) < 0)
                fail("write stdout");
            if (n > 0 && expect >= 0 && (got += n) >= expect)
                break;
        }
        if (pending && (p[0].revents & POLLOUT)) {
            ssize_t n = write(fd, in + off, pending);
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                fail("write socket");
            if (n > 0) {
                off += (size_t)n;
                pending -= (size_t)n;
            }
        }
        if (nfds == 2 && p[1].revents) {
            ssize_t n = read(0, in, sizeof in);
            if (n < 0 && errno != EINTR)
                fail("read stdin");
            if (n == 0) {
                in_open = 0;
                if (expect < 0 && shutdown(fd, SHUT_WR) < 0)
                    fail("shutdown");
            }
            if (n > 0) {
                pending = (size_t)n;
                off = 0;
            }
        }
    }
    close(fd);
}

static struct sockaddr_un unix_addr(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        fail(path);
    }
    strcpy(a.sun_path, path);
    return a;
}

/* Connects to PATH and asks for guest port `port`; returns the stream after "OK", or -1
 * when the device closed it (nothing listens on the guest's port yet). */
static int hybrid_connect(const char *path, const char *port) {
    struct sockaddr_un a = unix_addr(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    char line[64];
    snprintf(line, sizeof line, "CONNECT %s\n", port);
    if (write_all(fd, line, strlen(line)) < 0) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    while (len < sizeof line - 1) {
        ssize_t n = read(fd, line + len, 1);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        if (line[len++] == '\n')
            break;
    }
    line[len] = 0;
    if (strncmp(line, "OK ", 3) != 0) {
        fprintf(stderr, "vsock_echo: %s answered %s", path, line);
        exit(1);
    }
    fprintf(stderr, "vsock_echo: %s", line);
    return fd;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "server") && argc == 3) {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK,
                                .svm_cid = VMADDR_CID_ANY,
                                .svm_port = (unsigned)atoi(argv[2])};
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0)
            fail("vsock socket");
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0)
            fail("bind");
        if (listen(s, 1) < 0)
            fail("listen");
        int c = accept(s, NULL, NULL);
        if (c < 0)
            fail("accept");
        echo(c);
    } else if (!strcmp(mode, "client") && (argc == 4 || argc == 5)) {
        struct sockaddr_vm a = {.svm_family = AF_VSOCK,
                                .svm_cid = (unsigned)atoi(argv[2]),
                                .svm_port = (unsigned)atoi(argv[3])};
        int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (fd < 0)
            fail("vsock socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
            fail("connect");
        relay(fd, argc == 5 ? atoll(argv[4]) : -1);
    } else if (!strcmp(mode, "unix-server") && argc == 3) {
        struct sockaddr_un a = unix_addr(argv[2]);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0)
            fail("socket");
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0)
            fail("bind");
        if (listen(s, 1) < 0)
            fail("listen");
        int c = accept(s, NULL, NULL);
        if (c < 0)
            fail("accept");
        echo(c);
    } else if (!strcmp(mode, "unix-client") && (argc == 4 || argc == 5)) {
        /* A device may close a connection before reading the CONNECT line (too many
         * handshakes at once): a failed write is a retry, not a SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
        for (int i = 0; i < 1200; i++) {
            int fd = hybrid_connect(argv[2], argv[3]);
            if (fd >= 0) {
                relay(fd, argc == 5 ? atoll(argv[4]) : -1);
                return 0;
            }
            usleep(100000);
        }
        fprintf(stderr, "vsock_echo: no OK from %s for port %s in 120 s\n", argv[2], argv[3]);
        return 1;
    } else if (!strcmp(mode, "cid") && argc == 2) {
        unsigned int cid;
        int fd = open("/dev/vsock", O_RDONLY);
        if (fd < 0)
            fail("/dev/vsock");
        if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
            fail("IOCTL_VM_SOCKETS_GET_LOCAL_CID");
        printf("%u\n", cid);
    } else {
        fprintf(stderr, "usage: vsock_echo server PORT | client CID PORT [N] | "
                        "unix-server PATH | unix-client PATH PORT [N] | cid\n");
        return 2;
    }
    return 0;
}
