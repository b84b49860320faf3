/* agent/cmd_replay.c: `shoal replay`: print a node's event log (its
 * events.db, opened read-only, so the node may be running) as a timeline,
 * the archived entries and the state the log folds to. The formatting is
 * state/replay.c's; this file is argument handling and I/O. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "agent/datadir.h"
#include "common/util.h"
#include "state/state.h"

#define REPLAY_OUTPUT_MAX ((size_t)1 << 30) /* bytes of report we will build */

const char agent_replay_usage[] =
    "usage: shoal replay [--data-dir DIR] [--to INDEX] [--json]\n"
    "\n"
    "Print a node's event log as a timeline: one line per entry (index, term,\n"
    "time, type, summary), the entries archived by truncations (with why), and\n"
    "the state the log folds to (leader, term, epoch, nodes and resources).\n"
    "The log is opened read-only: the node may be stopped or running.\n"
    "\n"
    "options:\n"
    "  --data-dir DIR  the node's data dir (default: $XDG_DATA_HOME/shoal,\n"
    "                  else ~/.local/share/shoal); the log is DIR/events.db\n"
    "  --to INDEX      replay entries 1..INDEX only and show the state there\n"
    "  --json          one JSON document {\"log\",\"entries\",\"archived\",\"state\"}\n";

int agent_cmd_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"to", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *self = agent_cmd_find("replay");
    struct state_replay_opts opts = {0, false};
    struct state_store *store = NULL;
    struct state_store_meta meta;
    struct state_row *rows = NULL;
    struct state_archived *arch = NULL;
    size_t n = 0, na = 0;
    struct sh_strbuf out;
    struct sh_err err;
    char dir[PATH_MAX] = "";
    int c, rc = AGENT_EXIT_FAIL;

    sh_err_clear(&err);
    sh_strbuf_init(&out, REPLAY_OUTPUT_MAX);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (snprintf(dir, sizeof dir, "%s", optarg) >= (int)sizeof dir)
                return agent_usage_error(self, "--data-dir: path too long");
            break;
        case 't':
            if (!sh_parse_u64(optarg, (uint64_t)INT64_MAX, &opts.to_index) || opts.to_index == 0)
                return agent_usage_error(self, "--to: expected a log index >= 1, got '%s'", optarg);
            break;
        case 'j':
            opts.json = true;
            break;
        default:
            return agent_usage_error(self, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return agent_usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!dir[0] && agent_default_data_dir(dir, sizeof dir, &err) != 0)
        goto fail;
    if (state_store_open(dir, STATE_STORE_READONLY, &store, &err) ||
        state_store_load(store, &meta, &rows, &n, &err) ||
        state_store_archived(store, &arch, &na, &err))
        goto fail;
    state_store_close(store);
    store = NULL;
    if (state_replay_format(rows, n, arch, na, &meta, &opts, &out, &err))
        goto fail;
    if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        sh_err_set(&err, SH_EIO, "writing the report failed");
        goto fail;
    }
    rc = AGENT_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "shoal replay: %s\n", sh_err_msg(&err));
done:
    state_store_close(store);
    state_rows_free(rows, n);
    state_archived_free(arch, na);
    sh_strbuf_free(&out);
    return rc;
}
