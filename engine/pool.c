/* engine/pool.c: the thread pool the forward pass runs its matrix work on.
 *
 * Persistent workers and a generation counter: eng_pool_run publishes the
 * job, bumps `gen`, does share 0 itself and waits for `pending` to reach 0.
 * A decode step dispatches a few jobs per layer, each a few microseconds to
 * a few hundred, so waiting is a short spin first (a worker that spins
 * picks the next job up within nanoseconds) and a futex sleep after that
 * (idle workers cost nothing between requests). The futex wake is skipped
 * when nobody sleeps: each side announces a sleep in a counter before
 * futex_wait, whose own value check closes the race with the waker.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/model.h"

/* Spin iterations before sleeping: with a pause each, about 50-100 us. */
#define SPIN_ITERS  2000
#define MAX_THREADS 512

struct eng_pool {
    int n;              /* threads, the caller included */
    pthread_t *threads; /* (n - 1) workers */
    void (*fn)(void *arg, int i, int n);
    void *arg;
    atomic_uint gen;          /* bumped once per job */
    atomic_uint pending;      /* workers still running the current job */
    atomic_int stop;          /* workers exit at the next gen */
    atomic_int gen_sleepers;  /* workers in futex_wait on gen */
    atomic_int done_sleeping; /* the caller is in futex_wait on pending */
};

struct worker_arg {
    struct eng_pool *pool;
    int index;
};

static void futex_wait(atomic_uint *addr, unsigned expected)
{
    /* EAGAIN (value already changed) and EINTR both mean: look again. */
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr, int n)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* One step of a spin-wait: a pause, and every YIELD_EVERY steps a yield,
 * which lets a thread we wait for run if it is queued on this core. */
#define YIELD_EVERY 64
static inline void spin_step(int i)
{
    if (i % YIELD_EVERY == YIELD_EVERY - 1) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits until *addr != value; returns the new value. */
static unsigned wait_change(atomic_uint *addr, unsigned value, atomic_int *sleepers)
{
    unsigned v;

    for (int i = 0; i < SPIN_ITERS; i++) {
        v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != value)
            return v;
        spin_step(i);
    }
    for (;;) {
        atomic_fetch_add(sleepers, 1);
        v = atomic_load(addr);
        if (v == value)
            futex_wait(addr, value);
        atomic_fetch_sub(sleepers, 1);
        v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != value)
            return v;
    }
}

static void *worker_main(void *p)
{
    struct worker_arg *wa = p;
    struct eng_pool *pool = wa->pool;
    int index = wa->index;
    unsigned seen = 0;

    free(wa);
    for (;;) {
        seen = wait_change(&pool->gen, seen, &pool->gen_sleepers);
        if (atomic_load(&pool->stop))
            return NULL;
        pool->fn(pool->arg, index, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->done_sleeping))
            futex_wake(&pool->pending, 1);
    }
}

int eng_physical_cores(void)
{
    cpu_set_t set;
    int cores = 0;

    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
    /* A CPU counts as a core when it is the first of its SMT siblings. */
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        char path[128];
        FILE *f;
        int first = -1;
        if (!CPU_ISSET(cpu, &set))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
                 cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &first) != 1)
                first = -1;
            fclose(f);
        }
        if (first < 0 || first == cpu || !CPU_ISSET(first, &set))
            cores++;
    }
    return cores > 0 ? cores : CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

int eng_pool_new(int n_threads, struct eng_pool **out, struct sh_err *err)
{
    struct eng_pool *pool;

    if (n_threads <= 0)
        n_threads = eng_physical_cores();
    if (n_threads > MAX_THREADS)
        return sh_err_set(err, SH_EINVAL, "%d threads: at most %d", n_threads, MAX_THREADS);
    pool = calloc(1, sizeof *pool);
    if (!pool || !(pool->threads = calloc((size_t)n_threads, sizeof *pool->threads))) {
        free(pool);
        return sh_err_set(err, SH_ENOMEM, "out of memory for a pool of %d threads", n_threads);
    }
    pool->n = 1;
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->gen_sleepers, 0);
    atomic_init(&pool->done_sleeping, 0);
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        int rc;
        if (!wa) {
            eng_pool_free(pool);
            return sh_err_set(err, SH_ENOMEM, "out of memory for pool threads");
        }
        wa->pool = pool;
        wa->index = i;
        rc = pthread_create(&pool->threads[i - 1], NULL, worker_main, wa);
        if (rc != 0) {
            free(wa);
            eng_pool_free(pool);
            return sh_err_set(err, SH_EIO, "pthread_create: %s", strerror(rc));
        }
        pool->n = i + 1;
    }
    *out = pool;
    return 0;
}

void eng_pool_free(struct eng_pool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->gen, 1);
    futex_wake(&pool->gen, INT_MAX);
    for (int i = 1; i < pool->n; i++)
        pthread_join(pool->threads[i - 1], NULL);
    free(pool->threads);
    free(pool);
}

int eng_pool_size(const struct eng_pool *pool)
{
    return pool->n;
}

void eng_pool_run(struct eng_pool *pool, void (*fn)(void *arg, int i, int n), void *arg)
{
    unsigned left;

    if (pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, (unsigned)(pool->n - 1));
    /* seq_cst: the bump is ordered before the sleeper check below, and
     * a worker's sleeper increment before its own check of gen. */
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->gen_sleepers) > 0)
        futex_wake(&pool->gen, INT_MAX);
    fn(arg, 0, pool->n);
    left = atomic_load_explicit(&pool->pending, memory_order_acquire);
    for (int i = 0; left != 0 && i < SPIN_ITERS; i++) {
        spin_step(i);
        left = atomic_load_explicit(&pool->pending, memory_order_acquire);
    }
    while (left != 0) {
        atomic_store(&pool->done_sleeping, 1);
        left = atomic_load(&pool->pending);
        if (left != 0)
            futex_wait(&pool->pending, left);
        atomic_store(&pool->done_sleeping, 0);
        left = atomic_load_explicit(&pool->pending, memory_order_acquire);
    }
}
