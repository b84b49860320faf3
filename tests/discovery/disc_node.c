/* tests/discovery/disc_node.c: the discovery module on its own, for the
 * multi-host tests. Prints one line per event on stdout, stamped with
 * CLOCK_REALTIME seconds so lines from several hosts can be compared:
 *   <t> ready <own id> <port>
 *   <t> up <peer id> <name> <addr>
 *   <t> down <peer id> <reason>
 *   <t> msg <peer id> <text>
 * SIGUSR1 sends "hello from <name>" to every peer; SIGTERM/SIGINT stop it
 * cleanly (GOODBYE on every link, mDNS service withdrawn).
 *
 *   disc_node --name NAME [--port P] [--peer HOST:PORT]... [--no-mdns]
 *             [--cluster-key HEX] [--heartbeat-ms N] [--timeout-ms N]
 *             [--log error|warn|info|debug]
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "common/log.h"
#include "common/util.h"
#include "discovery/discovery.h"

#define MAX_PEERS 16

struct app {
    struct event_base *base;
    struct disc *d;
    char name[DISC_NAME_MAX + 1];
};

static void stamp(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%lld.%06ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000);
}

static void on_up(void *arg, uint64_t peer, const struct disc_link_info *info)
{
    char hex[17];
    (void)arg;
    disc_node_id_str(peer, hex);
    stamp();
    printf("up %s %s %s\n", hex, info->name, info->addr);
    fflush(stdout);
}

static void on_down(void *arg, uint64_t peer, const char *reason)
{
    char hex[17];
    (void)arg;
    disc_node_id_str(peer, hex);
    stamp();
    printf("down %s %s\n", hex, reason);
    fflush(stdout);
}

static void on_msg(void *arg, uint64_t peer, uint8_t type, const uint8_t *data, size_t len)
{
    char hex[17];
    (void)arg;
    (void)type;
    disc_node_id_str(peer, hex);
    stamp();
    printf("msg %s %.*s\n", hex, (int)(len > 200 ? 200 : len), (const char *)data);
    fflush(stdout);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(((struct app *)arg)->base);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    struct disc_link_info li[MAX_PEERS];
    char text[128];
    size_t n;

    (void)sig;
    (void)what;
    n = disc_links(a->d, li, MAX_PEERS);
    snprintf(text, sizeof text, "hello from %s", a->name);
    for (size_t i = 0; i < n && i < MAX_PEERS; i++)
        disc_send(a->d, li[i].peer_id, DISC_MSG_RAFT, text, strlen(text), NULL);
}

static int usage(void)
{
    fprintf(stderr, "usage: disc_node --name NAME [--port P] [--peer HOST:PORT]... "
                    "[--no-mdns] [--cluster-key HEX] [--heartbeat-ms N] [--timeout-ms N] "
                    "[--log LEVEL]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"port", required_argument, NULL, 'p'},
        {"peer", required_argument, NULL, 'P'},
        {"no-mdns", no_argument, NULL, 'M'},
        {"cluster-key", required_argument, NULL, 'k'},
        {"heartbeat-ms", required_argument, NULL, 'h'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"log", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    struct app a = {0};
    struct disc_config cfg = {0};
    struct disc_callbacks cbs = {on_up, on_down, on_msg};
    const char *peers[MAX_PEERS];
    uint8_t pk[DISC_PUBKEY_BYTES], sk[DISC_SECKEY_BYTES], key[32];
    struct event *sigs[3];
    struct sh_err err;
    char hex[17];
    uint64_t v;
    int c, level = SH_LOG_INFO;
    size_t klen = 0;

    cfg.mdns = true;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            snprintf(a.name, sizeof a.name, "%s", optarg);
            break;
        case 'p':
            if (!sh_parse_u64(optarg, 65535, &v))
                return usage();
            cfg.peer_port = (uint16_t)v;
            break;
        case 'P':
            if (cfg.n_static_peers == MAX_PEERS)
                return usage();
            peers[cfg.n_static_peers++] = optarg;
            break;
        case 'M':
            cfg.mdns = false;
            break;
        case 'k':
            if (sodium_hex2bin(key, sizeof key, optarg, strlen(optarg), NULL, &klen, NULL) != 0 ||
                klen != sizeof key)
                return usage();
            cfg.cluster_key = key;
            break;
        case 'h':
        case 't':
            if (!sh_parse_u64(optarg, 3600000, &v) || v == 0)
                return usage();
            if (c == 'h')
                cfg.heartbeat_ms = (uint32_t)v;
            else
                cfg.link_timeout_ms = (uint32_t)v;
            break;
        case 'l':
            if ((level = sh_log_parse_level(optarg)) < 0)
                return usage();
            break;
        default:
            return usage();
        }
    }
    if (!a.name[0] || optind != argc || sodium_init() < 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    crypto_sign_keypair(pk, sk);
    cfg.node_id = disc_node_id(pk);
    cfg.public_key = pk;
    cfg.secret_key = sk;
    cfg.name = a.name;
    cfg.api_port = 52415;
    cfg.static_peers = peers;
    disc_node_id_str(cfg.node_id, hex);
    sh_log_init((enum sh_log_level)level, hex, stderr);

    a.base = event_base_new();
    if (!a.base)
        return 1;
    sh_err_clear(&err);
    if (disc_new(a.base, &cfg, &cbs, &a, &a.d, &err) != 0) {
        fprintf(stderr, "disc_node: %s\n", sh_err_msg(&err));
        return 1;
    }
    sigs[0] = evsignal_new(a.base, SIGTERM, on_stop, &a);
    sigs[1] = evsignal_new(a.base, SIGINT, on_stop, &a);
    sigs[2] = evsignal_new(a.base, SIGUSR1, on_usr1, &a);
    for (int i = 0; i < 3; i++)
        event_add(sigs[i], NULL);
    stamp();
    printf("ready %s %u\n", hex, (unsigned)disc_peer_port(a.d));
    fflush(stdout);
    event_base_dispatch(a.base);
    disc_free(a.d);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_base_free(a.base);
    sodium_memzero(sk, sizeof sk);
    return 0;
}
