/* tests/state/store_writer.c: hammers a store so test_store_kill can SIGKILL
 * it mid-write. Usage:
 *   store_writer DIR SEED       append batches and bump term/vote forever,
 *                               writing "A <last index>" or "T <term>" to
 *                               stdout after each commit returns (= acked)
 *   store_writer --bench DIR N  N single-row appends, then N term/vote
 *                               updates; prints the rates (synchronous=FULL)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/state/writer_rows.h"

static void die(const char *what, const struct sh_err *err)
{
    fprintf(stderr, "store_writer: %s: %s\n", what, sh_err_msg(err));
    exit(1);
}

/* One write(2) per line: the pipe gets whole lines, nothing buffered. */
static void ack(char tag, uint64_t v)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%c %llu\n", tag, (unsigned long long)v);
    if (write(1, line, (size_t)n) != n)
        exit(1);
}

static void
append_batch(struct state_store *s, uint64_t first, size_t k, uint64_t term, struct sh_err *err)
{
    static char payload[4][WR_PAYLOAD_MAX];
    static uint64_t members[4][3];
    struct state_row rows[4];
    for (size_t j = 0; j < k; j++) {
        uint64_t idx = first + j;
        memset(&rows[j], 0, sizeof rows[j]);
        rows[j].index = idx;
        rows[j].term = term;
        rows[j].kind = wr_kind(idx);
        rows[j].time_ms = (int64_t)idx;
        rows[j].n_members = wr_members(idx, members[j]);
        rows[j].members = members[j];
        rows[j].payload_len = wr_payload(idx, first + k - 1, payload[j], sizeof payload[j]);
        rows[j].payload = payload[j];
    }
    if (state_store_append(s, rows, k, err))
        die("append", err);
}

static int bench(const char *dir, long n)
{
    struct state_store *s = NULL;
    struct state_store_meta m;
    struct sh_err err;
    double t0, t1, t2;

    if (state_store_open(dir, STATE_STORE_WRITE, &s, &err) || state_store_meta(s, &m, &err))
        die("open", &err);
    t0 = sh_now_s();
    for (long i = 0; i < n; i++)
        append_batch(s, m.last_index + 1 + (uint64_t)i, 1, 1, &err);
    t1 = sh_now_s();
    for (long i = 0; i < n; i++) {
        struct state_persist p = wr_persist((uint64_t)i + 1);
        if (state_store_set_persist(s, &p, &err))
            die("set_persist", &err);
    }
    t2 = sh_now_s();
    printf("appends (1 row per transaction, synchronous=FULL): %ld in %.2f s = %.0f/s\n", n,
           t1 - t0, (double)n / (t1 - t0));
    printf("term/vote updates: %ld in %.2f s = %.0f/s\n", n, t2 - t1, (double)n / (t2 - t1));
    state_store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    struct state_store *s = NULL;
    struct state_store_meta m;
    struct sh_err err;
    uint64_t next, term;
    unsigned seed;

    if (argc == 4 && strcmp(argv[1], "--bench") == 0)
        return bench(argv[2], atol(argv[3]) > 0 ? atol(argv[3]) : 1000);
    if (argc != 3) {
        fprintf(stderr, "usage: store_writer DIR SEED | store_writer --bench DIR N\n");
        return 2;
    }
    seed = (unsigned)strtoul(argv[2], NULL, 10);
    if (state_store_open(argv[1], STATE_STORE_WRITE, &s, &err) || state_store_meta(s, &m, &err))
        die("open", &err);
    next = m.last_index + 1;
    term = m.persist.term;
    if (term == 0) {
        struct state_persist p = wr_persist(++term);
        if (state_store_set_persist(s, &p, &err))
            die("set_persist", &err);
        ack('T', term);
    }
    for (;;) {
        if (rand_r(&seed) % 10 < 7) {
            size_t k = 1 + (size_t)(rand_r(&seed) % 4);
            append_batch(s, next, k, term, &err);
            next += k;
            ack('A', next - 1);
        } else {
            struct state_persist p = wr_persist(++term);
            if (state_store_set_persist(s, &p, &err))
                die("set_persist", &err);
            ack('T', term);
        }
    }
}
