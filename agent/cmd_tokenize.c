/* agent/cmd_tokenize.c: `shoal tokenize`: a model's tokenizer.json applied
 * to a text, ids printed as a JSON array (as Hugging Face's encode gives). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "common/file.h"
#include "engine/tokenizer.h"

/* Loads DIR/tokenizer.json for a command; prints why not. Shared with
 * cmd_detokenize.c. */
int agent_load_tokenizer(const char *cmd, const char *dir, struct eng_tokenizer **tok)
{
    char path[4096];
    struct sh_err err = {0};

    if (sh_path_join(path, sizeof path, dir, "tokenizer.json", &err) ||
        eng_tokenizer_load(path, tok, &err)) {
        fprintf(stderr, "shoal %s: %s\n", cmd, sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    return AGENT_EXIT_OK;
}

/* Shared with cmd_detokenize.c, whose options have the same form. */
int agent_tok_args_parse(const char *name,
                         const char *value_opt,
                         const char *flag_opt,
                         int argc,
                         char **argv,
                         struct agent_tok_args *out)
{
    const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {value_opt, required_argument, NULL, 'v'},
        {flag_opt, no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find(name);
    int c;

    out->model = agent_default_model();
    out->value = NULL;
    out->flag = false;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            out->model = optarg;
            break;
        case 'v':
            out->value = optarg;
            break;
        case 'f':
            out->flag = true;
            break;
        case ':':
            return agent_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default:
            return agent_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return agent_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!out->value)
        return agent_usage_error(cmd, "--%s is required", value_opt);
    return AGENT_EXIT_OK;
}

/* Shared with cmd_detokenize.c. */
int agent_tok_flush(const char *name)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shoal %s: writing the output failed\n", name);
        return AGENT_EXIT_FAIL;
    }
    return AGENT_EXIT_OK;
}

int agent_cmd_tokenize(int argc, char **argv)
{
    struct agent_tok_args a;
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    int rc;

    if ((rc = agent_tok_args_parse("tokenize", "text", "special", argc, argv, &a)) ||
        (rc = agent_load_tokenizer("tokenize", a.model, &tok)))
        return rc;
    if (eng_tokenize(tok, a.value, strlen(a.value), a.flag, &ids, &n, &err)) {
        fprintf(stderr, "shoal tokenize: %s\n", sh_err_msg(&err));
        eng_tokenizer_free(tok);
        return AGENT_EXIT_FAIL;
    }
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", ids[i]);
    printf("]\n");
    free(ids);
    eng_tokenizer_free(tok);
    return agent_tok_flush("tokenize");
}
