/* bench/membw.c: `membw`, the memory read-bandwidth probe of common/membw.h
 * on the command line, for bench/run and for people comparing machines.
 * Prints one line (or one JSON object) per thread count. */
#include "common/membw.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

#define MAX_THREAD_COUNTS 16

static const char usage[] =
    "usage: membw [-t LIST] [-m MIB] [-r RUNS] [--scalar] [--huge-pages] [--json]\n"
    "  -t, --threads LIST  comma-separated thread counts (default 1,2)\n"
    "  -m, --mib MIB       buffer size in MiB, split between the threads (default 1024)\n"
    "  -r, --runs RUNS     timed passes per thread count; the best is reported (default 8)\n"
    "  --scalar            use the portable kernel even where AVX2 is available\n"
    "  --huge-pages        back the buffer with transparent huge pages (madvise)\n"
    "  --json              one JSON object per line instead of text\n";

/* "1,2,4" -> counts; false on anything else. */
static bool parse_list(const char *s, int *counts, int *n)
{
    char buf[256];
    char *save = NULL;

    if (strlen(s) >= sizeof buf)
        return false;
    memcpy(buf, s, strlen(s) + 1);
    *n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (*n == MAX_THREAD_COUNTS || !sh_parse_i64(tok, 1, SH_MEMBW_MAX_THREADS, &v))
            return false;
        counts[(*n)++] = (int)v;
    }
    return *n > 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, 't'}, {"mib", required_argument, NULL, 'm'},
        {"runs", required_argument, NULL, 'r'},    {"scalar", no_argument, NULL, 'S'},
        {"huge-pages", no_argument, NULL, 'H'},    {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct sh_membw_opts o = {.bytes = (size_t)1024 << 20, .runs = 8};
    int counts[MAX_THREAD_COUNTS] = {1, 2};
    int ncounts = 2, c;
    bool json = false;
    int64_t v;

    while ((c = getopt_long(argc, argv, "t:m:r:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!parse_list(optarg, counts, &ncounts)) {
                fprintf(stderr, "membw: bad thread list '%s'\n%s", optarg, usage);
                return 2;
            }
            break;
        case 'm':
            if (!sh_parse_i64(optarg, 1, (int64_t)(SH_MEMBW_MAX_BYTES >> 20), &v)) {
                fprintf(stderr, "membw: bad size '%s' (MiB)\n%s", optarg, usage);
                return 2;
            }
            o.bytes = (size_t)v << 20;
            break;
        case 'r':
            if (!sh_parse_i64(optarg, 1, SH_MEMBW_MAX_RUNS, &v)) {
                fprintf(stderr, "membw: bad run count '%s'\n%s", optarg, usage);
                return 2;
            }
            o.runs = (int)v;
            break;
        case 'S':
            o.scalar = true;
            break;
        case 'H':
            o.huge_pages = true;
            break;
        case 'J':
            json = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "membw: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }

    for (int i = 0; i < ncounts; i++) {
        struct sh_membw_result r;
        struct sh_err err;
        sh_err_clear(&err);
        o.threads = counts[i];
        if (sh_membw_measure(&o, &r, &err) != 0) {
            fprintf(stderr, "membw: %s\n", sh_err_msg(&err));
            return 1;
        }
        if (json)
            printf("{\"threads\": %d, \"best_gbps\": %.2f, \"median_gbps\": %.2f, "
                   "\"bytes\": %zu, \"runs\": %d, \"kernel\": \"%s\", \"huge_pages\": %s}\n",
                   o.threads, r.best_gbps, r.median_gbps, r.bytes, o.runs, r.kernel,
                   o.huge_pages ? "true" : "false");
        else
            printf("threads %d: best %.1f GB/s, median %.1f GB/s (%s, %zu MiB x %d%s)\n", o.threads,
                   r.best_gbps, r.median_gbps, r.kernel, r.bytes >> 20, o.runs,
                   o.huge_pages ? ", huge pages" : "");
        fflush(stdout);
    }
    return 0;
}
