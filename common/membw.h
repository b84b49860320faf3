/* common/membw.h: measures how fast this machine reads memory.
 *
 * Token generation of an LLM reads every weight once per token, so its speed
 * is bounded by read bandwidth / bytes read per token; `shoal bench` and
 * bench/membw report that bound from this probe. N threads each stream
 * through their own slice of one large buffer (first touched by that thread)
 * with wide loads (AVX2 when the CPU has it, chosen at run time; a portable
 * loop otherwise); the fastest of several passes is the figure. Nothing is
 * kept between calls: each call allocates, measures and frees its buffer.
 */
#ifndef SH_MEMBW_H
#define SH_MEMBW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SH_MEMBW_MAX_THREADS 1024
#define SH_MEMBW_MIN_BYTES   ((size_t)1 << 20) /* per thread */
#define SH_MEMBW_MAX_BYTES   ((uint64_t)1 << 40)
#define SH_MEMBW_MAX_RUNS    10000
/* Word i (64-bit, little-endian order of the buffer) holds i * this constant,
 * so a pass's checksum is known in closed form (tests use it). */
#define SH_MEMBW_FILL_MUL 0x9E3779B97F4A7C15ULL

struct sh_membw_opts {
    int threads;     /* 1 .. SH_MEMBW_MAX_THREADS */
    size_t bytes;    /* whole buffer, split evenly; >= threads * SH_MEMBW_MIN_BYTES.
                      * Use several times the last-level cache, or caches are measured. */
    int runs;        /* timed passes over the whole buffer, 1 .. SH_MEMBW_MAX_RUNS */
    bool scalar;     /* force the portable kernel even when AVX2 is there */
    bool huge_pages; /* ask for transparent huge pages (madvise); weights mmapped
                      * from a file get 4 KiB pages, so the default is off */
};

struct sh_membw_result {
    double best_gbps;   /* 1e9 bytes per second of the fastest pass */
    double median_gbps; /* of all passes */
    size_t bytes;       /* bytes read per pass (opts.bytes rounded down to whole blocks) */
    const char *kernel; /* "avx2" or "scalar"; a static string */
    uint64_t checksum;  /* sum mod 2^64 of the words read in one pass: keeps the
                         * loads alive and proves every slice was read */
};

/* Runs the probe. *out is filled only on success.
 * Errors: SH_EINVAL (an option out of range; the message names it),
 * SH_ENOMEM (the buffer), SH_EIO (thread creation; the message has strerror). */
int sh_membw_measure(const struct sh_membw_opts *opts,
                     struct sh_membw_result *out,
                     struct sh_err *err);

/* Sum mod 2^64 of the n words at p (any alignment), with the kernel the probe
 * would use (the portable one when scalar is true). Exposed for tests. */
uint64_t sh_membw_sum(const uint64_t *p, size_t n, bool scalar);

/* True when the CPU and compiler give us the AVX2 kernel. */
bool sh_membw_have_avx2(void);

#endif
