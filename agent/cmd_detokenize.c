/* agent/cmd_detokenize.c: `shoal detokenize`: token ids back to text with a
 * model's tokenizer.json, written exactly (no newline added). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "common/util.h"
#include "engine/tokenizer.h"

/* Most ids one --ids list may carry (far more than any context). */
#define DETOK_MAX_IDS ((size_t)1 << 24)

/* Parses "1,2,3" (also "[1, 2, 3]", as tokenize prints). Returns 0, or
 * writes what is wrong into why. */
static int parse_ids(const char *s, int32_t **out, size_t *n, char *why, size_t why_len)
{
    size_t len = strlen(s), cap = 0;
    char *buf, *p, *end;
    int32_t *ids = NULL;

    *n = 0;
    while (len && s[0] == ' ')
        s++, len--;
    while (len && s[len - 1] == ' ')
        len--;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    buf = strndup(s, len);
    if (!buf) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    p = buf;
    while (*p) {
        int64_t v;
        char *tok;
        end = strchr(p, ',');
        if (end)
            *end = '\0';
        tok = p;
        while (*tok == ' ')
            tok++;
        for (char *t = tok + strlen(tok); t > tok && t[-1] == ' ';)
            *--t = '\0';
        if (!sh_parse_i64(tok, 0, INT32_MAX, &v)) {
            snprintf(why, why_len, "'%s' is not a token id (an integer in [0, %d])", tok,
                     INT32_MAX);
            goto fail;
        }
        if (*n == cap) {
            int32_t *np;
            if (cap == DETOK_MAX_IDS) {
                snprintf(why, why_len, "more than %zu ids", DETOK_MAX_IDS);
                goto fail;
            }
            cap = cap ? cap * 2 : 64;
            np = realloc(ids, cap * sizeof *ids);
            if (!np) {
                snprintf(why, why_len, "out of memory");
                goto fail;
            }
            ids = np;
        }
        ids[(*n)++] = (int32_t)v;
        if (!end)
            break;
        p = end + 1;
        if (!*p) {
            snprintf(why, why_len, "trailing ','");
            goto fail;
        }
    }
    free(buf);
    *out = ids;
    return 0;
fail:
    free(buf);
    free(ids);
    return -1;
}

int agent_cmd_detokenize(int argc, char **argv)
{
    struct agent_tok_args a;
    struct eng_tokenizer *tok = NULL;
    struct sh_err err = {0};
    int32_t *ids = NULL;
    char why[160], *text = NULL;
    size_t n = 0, len = 0;
    int rc;

    if ((rc = agent_tok_args_parse("detokenize", "ids", "skip-special", argc, argv, &a)))
        return rc;
    if (parse_ids(a.value, &ids, &n, why, sizeof why))
        return agent_usage_error(agent_cmd_find("detokenize"), "--ids: %s", why);
    if ((rc = agent_load_tokenizer("detokenize", a.model, &tok))) {
        free(ids);
        return rc;
    }
    rc = eng_detokenize(tok, ids, n, a.flag, &text, &len, &err);
    free(ids);
    eng_tokenizer_free(tok);
    if (rc) {
        fprintf(stderr, "shoal detokenize: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_FAIL;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    return agent_tok_flush("detokenize");
}
