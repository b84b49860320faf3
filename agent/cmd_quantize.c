/* agent/cmd_quantize.c: `shoal quantize`: write an MLX affine-quantized
 * (4- or 8-bit) copy of a Hugging Face float model folder, the format
 * mlx-community publishes, so that users can make their own. The work is
 * eng_quantize's; this file parses the options. */
#include <getopt.h>
#include <stdio.h>

#include "agent/cli.h"
#include "common/util.h"
#include "engine/model.h"

static const struct agent_cmd *self(void)
{
    return agent_cmd_find("quantize");
}

int agent_cmd_quantize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},      {"bits", required_argument, NULL, 'b'},
        {"group-size", required_argument, NULL, 'g'}, {"dtype", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},        {NULL, 0, NULL, 0},
    };
    struct eng_quantize_opts q = {.bits = 0, .group_size = 64, .dtype = NULL};
    const char *model_dir = agent_default_model(), *out = NULL;
    struct sh_err err = {0};
    int64_t v;
    int c;
    double t0;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'b':
            if (!sh_parse_i64(optarg, 1, 64, &v) || (v != 4 && v != 8))
                return agent_usage_error(self(), "--bits: 4 or 8, got \"%s\"", optarg);
            q.bits = (int)v;
            break;
        case 'g':
            if (!sh_parse_i64(optarg, 1, 1024, &v) || (v != 32 && v != 64 && v != 128))
                return agent_usage_error(self(), "--group-size: 32, 64 or 128, got \"%s\"", optarg);
            q.group_size = (int)v;
            break;
        case 'd':
            q.dtype = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        default:
            return agent_option_error(self(), c, argv);
        }
    }
    if (optind < argc)
        return agent_usage_error(self(), "unexpected argument \"%s\"", argv[optind]);
    if (!q.bits)
        return agent_usage_error(self(), "--bits is required (4 or 8)");
    if (!out)
        return agent_usage_error(self(), "--out is required");
    t0 = sh_now_s();
    if (eng_quantize(model_dir, out, &q, &err)) {
        fprintf(stderr, "shoal quantize: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    printf("%s: %d-bit, group size %d, written in %.1f s\n", out, q.bits, q.group_size,
           sh_now_s() - t0);
    return AGENT_EXIT_OK;
}
