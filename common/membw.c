/* common/membw.c: the memory read-bandwidth probe (see membw.h): threads,
 * a cancellable barrier, and the summing kernels (portable and AVX2). */
#include "common/membw.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1
#else
#define HAVE_AVX2_KERNEL 0
#endif

/* Slices are whole blocks of this many bytes so the kernels never need a
 * tail inside the timed loop, and start on a cache line. */
#define BLOCK_BYTES ((size_t)4096)
#define BUF_ALIGN   ((size_t)2 << 20) /* lets huge pages back the buffer */

/* ---- kernels: sum of 64-bit words mod 2^64. Integer adds are exact, so every
 * kernel and every order gives the same checksum. */

static uint64_t sum_scalar(const uint64_t *p, size_t n)
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
    }
    for (; i < n; i++)
        a0 += p[i];
    return a0 + a1 + a2 + a3;
}

#if HAVE_AVX2_KERNEL
/* Four independent 256-bit accumulators: 128 bytes per iteration keeps two
 * loads per cycle in flight, far more than DRAM can feed. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    uint64_t lanes[4];
    size_t i = 0;

    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const void *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const void *)(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const void *)(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const void *)(p + i + 12)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    _mm256_storeu_si256((void *)lanes, a0);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_scalar(p + i, n - i);
}
#endif

bool sh_membw_have_avx2(void)
{
#if HAVE_AVX2_KERNEL
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

uint64_t sh_membw_sum(const uint64_t *p, size_t n, bool scalar)
{
#if HAVE_AVX2_KERNEL
    if (!scalar && sh_membw_have_avx2())
        return sum_avx2(p, n);
#else
    (void)scalar;
#endif
    return sum_scalar(p, n);
}

/* ---- a barrier that can be called off: if creating thread k fails, the
 * threads already waiting must be released, which pthread_barrier_t cannot do. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int parties;  /* threads that meet at each crossing */
    int waiting;  /* arrived at the current crossing */
    unsigned gen; /* crossings completed */
    bool cancelled;
};

/* Returns false when the gate was cancelled (the caller stops). */
static bool gate_cross(struct gate *g)
{
    bool ok;

    pthread_mutex_lock(&g->mu);
    if (!g->cancelled) {
        unsigned gen = g->gen;
        if (++g->waiting == g->parties) {
            g->waiting = 0;
            g->gen++;
            pthread_cond_broadcast(&g->cv);
        } else {
            while (gen == g->gen && !g->cancelled)
                pthread_cond_wait(&g->cv, &g->mu);
        }
    }
    ok = !g->cancelled;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static void gate_cancel(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->cancelled = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* ---- the probe */
struct probe {
    struct gate gate;
    uint64_t *buf;
    size_t words_per_thread;
    int runs;
    bool scalar;
};

struct worker {
    struct probe *pr;
    int index;
    uint64_t checksum; /* of its slice, last pass */
    pthread_t tid;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Thread 0 (the caller) also records the time of each pass into times[]:
 * from the crossing that starts it to the crossing after every slice is read. */
static void work(struct worker *w, double *times)
{
    struct probe *pr = w->pr;
    size_t first = (size_t)w->index * pr->words_per_thread;
    uint64_t *slice = pr->buf + first;

    /* First touch from the reading thread puts the pages on its node. */
    for (size_t i = 0; i < pr->words_per_thread; i++)
        slice[i] = (uint64_t)(first + i) * SH_MEMBW_FILL_MUL;
    if (!gate_cross(&pr->gate))
        return;
    for (int r = 0; r < pr->runs; r++) {
        double t0;
        if (!gate_cross(&pr->gate))
            return;
        t0 = now_s();
        w->checksum = sh_membw_sum(slice, pr->words_per_thread, pr->scalar);
        if (!gate_cross(&pr->gate))
            return;
        if (times)
            times[r] = now_s() - t0;
    }
}

static void *worker_main(void *arg)
{
    work(arg, NULL);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int check_opts(const struct sh_membw_opts *o, struct sh_err *err)
{
    if (o->threads < 1 || o->threads > SH_MEMBW_MAX_THREADS)
        return sh_err_set(err, SH_EINVAL, "membw: threads %d outside 1..%d", o->threads,
                          SH_MEMBW_MAX_THREADS);
    if (o->runs < 1 || o->runs > SH_MEMBW_MAX_RUNS)
        return sh_err_set(err, SH_EINVAL, "membw: runs %d outside 1..%d", o->runs,
                          SH_MEMBW_MAX_RUNS);
    if ((uint64_t)o->bytes > SH_MEMBW_MAX_BYTES)
        return sh_err_set(err, SH_EINVAL, "membw: %zu bytes is more than the limit %llu", o->bytes,
                          (unsigned long long)SH_MEMBW_MAX_BYTES);
    if (o->bytes / (size_t)o->threads < SH_MEMBW_MIN_BYTES)
        return sh_err_set(err, SH_EINVAL,
                          "membw: %zu bytes over %d threads is under %zu bytes per thread",
                          o->bytes, o->threads, SH_MEMBW_MIN_BYTES);
    return 0;
}

int sh_membw_measure(const struct sh_membw_opts *opts,
                     struct sh_membw_result *out,
                     struct sh_err *err)
{
    struct probe pr;
    struct worker *ws = NULL;
    double *times = NULL;
    void *mem = NULL;
    size_t slice_bytes, total;
    int started = 0, rc;

    rc = check_opts(opts, err);
    if (rc)
        return rc;
    slice_bytes = opts->bytes / (size_t)opts->threads / BLOCK_BYTES * BLOCK_BYTES;
    total = slice_bytes * (size_t)opts->threads; /* <= opts->bytes: no overflow */

    memset(&pr, 0, sizeof pr);
    pr.words_per_thread = slice_bytes / sizeof(uint64_t);
    pr.runs = opts->runs;
    pr.scalar = opts->scalar;
    pr.gate.parties = opts->threads;
    ws = calloc((size_t)opts->threads, sizeof *ws);
    times = calloc((size_t)opts->runs, sizeof *times);
    if (!ws || !times || posix_memalign(&mem, BUF_ALIGN, total) != 0) {
        rc = sh_err_set(err, SH_ENOMEM, "membw: cannot allocate %zu bytes", total);
        goto out;
    }
    pr.buf = mem;
#ifdef MADV_HUGEPAGE
    if (opts->huge_pages)
        (void)madvise(mem, total, MADV_HUGEPAGE); /* advice only: 4 KiB pages still work */
#endif
    pthread_mutex_init(&pr.gate.mu, NULL);
    pthread_cond_init(&pr.gate.cv, NULL);

    for (int i = 0; i < opts->threads; i++) {
        ws[i].pr = &pr;
        ws[i].index = i;
    }
    for (int i = 1; i < opts->threads; i++) {
        int e = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
        if (e != 0) {
            gate_cancel(&pr.gate);
            rc = sh_err_set(err, SH_EIO, "membw: starting thread %d of %d: %s", i + 1,
                            opts->threads, strerror(e));
            break;
        }
        started++;
    }
    if (!rc)
        work(&ws[0], times);
    for (int i = 1; i <= started; i++)
        pthread_join(ws[i].tid, NULL);
    pthread_cond_destroy(&pr.gate.cv);
    pthread_mutex_destroy(&pr.gate.mu);
    if (rc)
        goto out;

    qsort(times, (size_t)opts->runs, sizeof *times, cmp_double);
    memset(out, 0, sizeof *out);
    /* A pass too quick for the clock cannot happen above SH_MEMBW_MIN_BYTES,
     * but a zero time must not turn into infinity. */
    out->best_gbps = times[0] > 0 ? (double)total / times[0] * 1e-9 : 0;
    out->median_gbps = times[opts->runs / 2] > 0 ? (double)total / times[opts->runs / 2] * 1e-9 : 0;
    if (opts->runs % 2 == 0 && times[opts->runs / 2 - 1] > 0)
        out->median_gbps =
            0.5 * (out->median_gbps + (double)total / times[opts->runs / 2 - 1] * 1e-9);
    out->bytes = total;
    out->kernel = (!opts->scalar && sh_membw_have_avx2()) ? "avx2" : "scalar";
    for (int i = 0; i < opts->threads; i++)
        out->checksum += ws[i].checksum;
out:
    free(mem);
    free(times);
    free(ws);
    return rc;
}
