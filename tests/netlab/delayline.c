/* tests/netlab/delayline.c: a userspace cable with a fixed one-way delay,
 * for shaping lab links on kernels without sch_netem (tc's delay qdisc).
 *
 *   delayline IFACE_A IFACE_B DELAY_US
 *
 * Every Ethernet frame seen on A is sent out of B DELAY_US later, and the
 * other way round. Frames are read with AF_PACKET and PACKET_VNET_HDR, so a
 * veth's GSO super-frames (up to 64 KiB) and checksum-offload state pass
 * unchanged. Each direction queues frames in one byte ring (the delay is
 * constant, so arrival order is departure order); a full ring drops, like a
 * switch buffer. Send errors while a side is down (an unplugged cable) are
 * counted as drops. Real-time priority and 1 ns timer slack, when allowed,
 * keep the delay close to its value on a loaded machine.
 * Stops on SIGTERM/SIGINT and prints its counters on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX  (65536 + sizeof(struct virtio_net_hdr))
#define RING_BYTES (32u << 20)
#define REC_WRAP   UINT32_MAX /* record length marking "continue at offset 0" */

/* One queued frame in a ring: header, then the frame, padded to 8 bytes. */
struct rec {
    uint64_t due_ns;
    uint32_t len;
    uint32_t pad;
};

struct ring {
    uint8_t *buf;
    size_t head; /* oldest record */
    size_t tail; /* where the next one goes */
    size_t used; /* bytes taken, including space skipped at a wrap */
    unsigned long long forwarded, dropped;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t rec_size(size_t len)
{
    return sizeof(struct rec) + ((len + 7) & ~(size_t)7);
}

/* Appends a frame; false (and counted) when the ring is full. */
static int ring_push(struct ring *r, const uint8_t *data, size_t len, uint64_t due)
{
    size_t need = rec_size(len);
    struct rec h = {.due_ns = due, .len = (uint32_t)len};

    if (r->used == 0)
        r->head = r->tail = 0;
    else if (r->tail == r->head)
        goto full; /* used > 0 and the ends meet: every byte is taken */
    if (r->tail >= r->head) {
        if (RING_BYTES - r->tail < need) {
            /* Not enough room at the end: skip it and continue at 0. */
            if (r->head < need)
                goto full;
            if (RING_BYTES - r->tail >= sizeof h) {
                struct rec w = {.len = REC_WRAP};
                memcpy(r->buf + r->tail, &w, sizeof w);
            }
            r->used += RING_BYTES - r->tail;
            r->tail = 0;
        }
    } else if (r->head - r->tail < need) {
        goto full;
    }
    memcpy(r->buf + r->tail, &h, sizeof h);
    memcpy(r->buf + r->tail + sizeof h, data, len);
    r->tail += need;
    r->used += need;
    return 1;
full:
    r->dropped++;
    return 0;
}

/* The oldest record, or NULL. Steps over a wrap point. */
static struct rec *ring_front(struct ring *r)
{
    struct rec *h;

    if (r->used == 0)
        return NULL;
    if (RING_BYTES - r->head < sizeof *h ||
        ((struct rec *)(void *)(r->buf + r->head))->len == REC_WRAP) {
        r->used -= RING_BYTES - r->head;
        r->head = 0;
    }
    h = (struct rec *)(void *)(r->buf + r->head);
    return h;
}

static void ring_pop(struct ring *r, const struct rec *h)
{
    size_t n = rec_size(h->len);
    r->head += n;
    r->used -= n;
    if (r->used == 0)
        r->head = r->tail = 0;
}

static int open_iface(const char *name)
{
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
    struct packet_mreq mr = {.mr_type = PACKET_MR_PROMISC};
    int fd, one = 1, bufsz = 8 << 20;
    unsigned idx = if_nametoindex(name);

    if (!idx) {
        fprintf(stderr, "delayline: no interface '%s'\n", name);
        return -1;
    }
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) {
        fprintf(stderr, "delayline: packet socket: %s\n", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
        fprintf(stderr, "delayline: PACKET_VNET_HDR on %s: %s\n", name, strerror(errno));
        close(fd);
        return -1;
    }
    /* We see our own transmissions on the other socket's interface only if
     * asked; ignore them here so nothing loops. */
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    sll.sll_ifindex = (int)idx;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
        fprintf(stderr, "delayline: bind %s: %s\n", name, strerror(errno));
        close(fd);
        return -1;
    }
    mr.mr_ifindex = (int)idx;
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
    return fd;
}

/* Queues everything readable on fd into r, due delay from now. */
static void take_in(int fd, struct ring *r, uint64_t delay, uint8_t *frame)
{
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, frame, FRAME_MAX, 0, (struct sockaddr *)&from, &fl);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN, or ENETDOWN while a cable is out */
        if (from.sll_pkttype == PACKET_OUTGOING)
            continue;
        ring_push(r, frame, (size_t)n, now_ns() + delay);
    }
}

/* Sends every due frame of r out of fd. */
static void send_due(int fd, struct ring *r, uint64_t now)
{
    struct rec *h;

    while ((h = ring_front(r)) && h->due_ns <= now) {
        if (send(fd, (uint8_t *)(h + 1), h->len, MSG_DONTWAIT) < 0)
            r->dropped++;
        else
            r->forwarded++;
        ring_pop(r, h);
    }
}

static uint64_t next_due(struct ring *a, struct ring *b)
{
    struct rec *ha = ring_front(a), *hb = ring_front(b);
    uint64_t t = UINT64_MAX;

    if (ha)
        t = ha->due_ns;
    if (hb && hb->due_ns < t)
        t = hb->due_ns;
    return t;
}

int main(int argc, char **argv)
{
    struct sched_param sp = {.sched_priority = 10};
    struct sigaction sa = {.sa_handler = on_signal};
    struct ring ab = {0}, ba = {0};
    uint8_t *frame;
    char *end = NULL;
    unsigned long us;
    int fa, fb;

    if (argc != 4) {
        fprintf(stderr, "usage: delayline IFACE_A IFACE_B DELAY_US\n");
        return 2;
    }
    errno = 0;
    us = strtoul(argv[3], &end, 10);
    if (errno || !end || *end || argv[3][0] == '-' || us > 10000000ul) {
        fprintf(stderr, "delayline: delay must be 0..10000000 microseconds, got '%s'\n", argv[3]);
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
        fprintf(stderr, "delayline: no real-time priority (%s): delays jitter under load\n",
                strerror(errno));
    fa = open_iface(argv[1]);
    fb = open_iface(argv[2]);
    frame = malloc(FRAME_MAX);
    ab.buf = malloc(RING_BYTES);
    ba.buf = malloc(RING_BYTES);
    if (fa < 0 || fb < 0 || !frame || !ab.buf || !ba.buf)
        return 1;
    fprintf(stderr, "delayline: %s <-> %s, %lu us each way\n", argv[1], argv[2], us);

    while (!stopping) {
        struct pollfd p[2] = {{.fd = fa, .events = POLLIN}, {.fd = fb, .events = POLLIN}};
        struct timespec ts, *tsp = NULL;
        uint64_t now = now_ns(), due;

        send_due(fb, &ab, now);
        send_due(fa, &ba, now);
        due = next_due(&ab, &ba);
        if (due != UINT64_MAX) {
            now = now_ns();
            due = due > now ? due - now : 0;
            ts.tv_sec = (time_t)(due / 1000000000u);
            ts.tv_nsec = (long)(due % 1000000000u);
            tsp = &ts;
        }
        if (ppoll(p, 2, tsp, NULL) < 0 && errno != EINTR) {
            fprintf(stderr, "delayline: ppoll: %s\n", strerror(errno));
            break;
        }
        /* Read on any event: recvfrom also consumes a pending socket error
         * (ENETDOWN after an unplug), so POLLERR cannot spin. */
        if (p[0].revents)
            take_in(fa, &ab, (uint64_t)us * 1000u, frame);
        if (p[1].revents)
            take_in(fb, &ba, (uint64_t)us * 1000u, frame);
    }
    fprintf(stderr,
            "delayline: stopped; %s->%s %llu sent %llu dropped; %s->%s %llu sent %llu "
            "dropped\n",
            argv[1], argv[2], ab.forwarded, ab.dropped, argv[2], argv[1], ba.forwarded, ba.dropped);
    free(frame);
    free(ab.buf);
    free(ba.buf);
    close(fa);
    close(fb);
    return 0;
}
