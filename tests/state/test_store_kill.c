/* tests/state/test_store_kill.c: kill -9 a writer while it appends and
 * updates term/vote; after every kill, reopen the log as a restarting agent
 * would and check: indexes contiguous from 1, every acknowledged row present
 * and intact, no partial batch, term/vote a pair the writer committed (the
 * last acknowledged one, or the one in flight). The writer resumes on the
 * same file each round. Seeded, so a failure replays.
 *
 * argv[1]: the store_writer binary (meson passes it). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "lib/test.h"
#include "tests/state/tmpdir.h"
#include "tests/state/writer_rows.h"

#define KILLS        40
#define MAX_RUN_MS   40 /* a round writes 0..MAX_RUN_MS ms before the kill */
#define SEED         20261122u
#define START_MAX_MS 10000 /* the writer must acknowledge something by then */

static const char *writer_path;

struct acked {
    uint64_t index; /* highest acknowledged log index */
    uint64_t term;  /* highest acknowledged term */
};

/* Feeds "A n" / "T n" lines into a; partial lines wait in buf. */
static void take_lines(char *buf, size_t *len, struct acked *a)
{
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
        unsigned long long v = 0;
        *nl = '\0';
        if (sscanf(start + 2, "%llu", &v) == 1) {
            if (start[0] == 'A' && v > a->index)
                a->index = v;
            if (start[0] == 'T' && v > a->term)
                a->term = v;
        }
        start = nl + 1;
    }
    *len -= (size_t)(start - buf);
    memmove(buf, start, *len);
}

/* One round: start the writer, let it run run_ms (counted from its first
 * acknowledgement when after_ack, so the kill lands mid-write however slow
 * start-up is; from the spawn otherwise, to hit open and recovery too),
 * SIGKILL it, collect what it acknowledged before dying. */
static void
run_and_kill(const char *dir, unsigned seed, int run_ms, bool after_ack, struct acked *a)
{
    char seedstr[16], buf[4096];
    size_t len = 0;
    int p[2], status = 0;
    uint64_t deadline;
    pid_t pid;

    assert_int_equal(pipe(p), 0);
    snprintf(seedstr, sizeof seedstr, "%u", seed);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(writer_path, writer_path, dir, seedstr, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    deadline = sh_now_ns() + (after_ack ? START_MAX_MS : (uint64_t)run_ms) * 1000000u;
    for (;;) {
        uint64_t now = sh_now_ns();
        struct pollfd pf = {p[0], POLLIN, 0};
        struct acked before = *a;
        ssize_t r;
        if (now >= deadline)
            break;
        if (poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
            continue;
        r = read(p[0], buf + len, sizeof buf - len - 1);
        if (r <= 0)
            break; /* the writer died on its own: reported below */
        len += (size_t)r;
        take_lines(buf, &len, a);
        if (after_ack && (a->index != before.index || a->term != before.term)) {
            after_ack = false; /* first acknowledgement: the countdown starts */
            deadline = sh_now_ns() + (uint64_t)run_ms * 1000000u;
        }
    }
    kill(pid, SIGKILL);
    /* Lines written before the kill are still in the pipe: all acknowledged. */
    for (;;) {
        ssize_t r = read(p[0], buf + len, sizeof buf - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        take_lines(buf, &len, a);
    }
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("writer exited by itself (status 0x%x): see its stderr", status);
}

/* Checks one row against what the writer derives from its index. */
static void check_row(const struct state_row *r, size_t nrows)
{
    char want[WR_PAYLOAD_MAX];
    uint64_t members[3];
    cJSON *j = NULL;
    int64_t b = 0;
    size_t n;

    if (sh_json_parse(r->payload, r->payload_len, "payload", &j, NULL) != 0 ||
        sh_json_int(j, "b", 1, INT64_MAX, &b, NULL) != 0)
        fail_msg("row %llu: payload not intact: %.80s", (unsigned long long)r->index, r->payload);
    cJSON_Delete(j);
    /* the batch this row came in must be whole */
    if ((uint64_t)b < r->index || (uint64_t)b > nrows)
        fail_msg("row %llu: batch ends at %lld but the log ends at %zu (partial batch)",
                 (unsigned long long)r->index, (long long)b, nrows);
    n = wr_payload(r->index, (uint64_t)b, want, sizeof want);
    assert_int_equal(r->payload_len, n);
    assert_string_equal(r->payload, want);
    assert_int_equal(r->kind, wr_kind(r->index));
    assert_true(r->time_ms == (int64_t)r->index);
    n = wr_members(r->index, members);
    assert_int_equal(r->n_members, n);
    if (n)
        assert_memory_equal(r->members, members, n * sizeof members[0]);
}

static void kill_nine(void **unused)
{
    struct acked a = {0, 0};
    uint64_t prev_n = 0, prev_term = 0;
    unsigned rng = SEED;
    char dir[256];
    int with_acks = 0;
    (void)unused;

    tmpdir_make(dir, sizeof dir);
    for (int k = 0; k < KILLS; k++) {
        struct state_store *s = NULL;
        struct state_store_meta m;
        struct state_row *rows = NULL;
        struct state_persist want;
        struct sh_err err;
        uint64_t before = a.index + a.term;
        size_t n = 0;
        int run_ms = (int)(rand_r(&rng) % MAX_RUN_MS);
        bool after_ack = rand_r(&rng) % 4 != 0; /* 1 in 4 from the spawn */

        run_and_kill(dir, rand_r(&rng), run_ms, after_ack, &a);
        with_acks += a.index + a.term > before;
        /* restart: open for writing, exactly as an agent would */
        if (state_store_open(dir, STATE_STORE_WRITE, &s, &err) != 0 ||
            state_store_load(s, &m, &rows, &n, &err) != 0)
            fail_msg("kill %d (after %d ms): reopen: %s", k, run_ms, err.msg);
        if (n < a.index)
            fail_msg("kill %d: %zu rows but index %llu was acknowledged", k, n,
                     (unsigned long long)a.index);
        for (size_t i = 0; i < n; i++) {
            assert_true(rows[i].index == i + 1); /* contiguous from 1 */
            assert_true(rows[i].term <= m.persist.term);
            assert_true(i == 0 || rows[i].term >= rows[i - 1].term);
            check_row(&rows[i], n);
        }
        /* the acked term, or the one being written when the kill came */
        if (m.persist.term < a.term || m.persist.term > a.term + 1)
            fail_msg("kill %d: term %llu, acknowledged %llu", k, (unsigned long long)m.persist.term,
                     (unsigned long long)a.term);
        if (m.persist.term == 0) /* killed before its first term was written */
            memset(&want, 0, sizeof want);
        else
            want = wr_persist(m.persist.term);
        /* field by field: a struct copy need not carry padding bytes */
        assert_true(m.persist.term == want.term && m.persist.voted_for == want.voted_for &&
                    m.persist.epoch == want.epoch && m.persist.epoch_node == want.epoch_node &&
                    m.persist.epoch_base == want.epoch_base &&
                    m.persist.vote_epoch == want.vote_epoch);
        /* nothing goes backwards across restarts */
        assert_true(n >= prev_n && m.persist.term >= prev_term);
        prev_n = n;
        prev_term = m.persist.term;
        /* what we saw on disk counts as acknowledged from now on */
        a.index = n;
        a.term = m.persist.term;
        state_rows_free(rows, n);
        state_store_close(s);
    }
    printf("# %d kills, %d rounds acknowledged something; log at index %llu, term %llu\n", KILLS,
           with_acks, (unsigned long long)prev_n, (unsigned long long)prev_term);
    /* most rounds must have got past start-up, or the kills test nothing */
    assert_true(with_acks >= KILLS / 2);
    tmpdir_remove(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill_nine),
    };
    if (argc < 2) {
        fprintf(stderr, "usage: %s STORE_WRITER\n", argv[0]);
        return 2;
    }
    writer_path = argv[1];
    return cmocka_run_group_tests_name("state/store_kill", tests, NULL, NULL);
}
