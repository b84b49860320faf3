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

int agent_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"text", required_argument, NULL, 't'},
        {"special", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find("tokenize");
    const char *model = agent_default_model(), *text = NULL;
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    bool special = false;
    int32_t *ids = NULL;
    size_t n = 0;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 't':
            text = optarg;
            break;
        case 's':
            special = true;
            break;
        case ':':
            return agent_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default:
            return agent_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return agent_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!text)
        return agent_usage_error(cmd, "--text is required");
    if ((rc = agent_load_tokenizer("tokenize", model, &tok)))
        return rc;
    if (eng_tokenize(tok, text, strlen(text), special, &ids, &n, &err)) {
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
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "shoal tokenize: writing the output failed\n");
        return AGENT_EXIT_FAIL;
    }
    return AGENT_EXIT_OK;
}
