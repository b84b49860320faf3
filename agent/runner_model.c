/* agent/runner_model.c: what a runner loads once and every request shares:
 * the model, its tokenizer and chat template, the stop tokens of a chat
 * turn, the template's tool-call and reasoning formats, the test aid's
 * forced outputs; and the READY message that tells the agent about them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agent/runner.h"
#include "common/file.h"
#include "common/log.h"
#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

#define MOD "runner"

/* End-of-turn markers of the families we run (as `shoal run --chat`): a
 * template that writes one after an assistant turn ends the turn with it,
 * so generation stops there even when generation_config's eos ids do not
 * list it. */
static const char *const turn_markers[] = {"<|im_end|>", "<|eot_id|>", "<|end|>",
                                           "<\xef\xbd\x9c"
                                           "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"};

static void add_stop(struct runner_model *rm, int32_t id)
{
    const struct eng_config *cfg = eng_model_config(rm->model);

    if (id < 0 || id >= cfg->vocab_size || rm->n_chat_stop_ids == RUNNER_MAX_STOP_IDS)
        return;
    for (size_t i = 0; i < rm->n_chat_stop_ids; i++)
        if (rm->chat_stop_ids[i] == id)
            return;
    rm->chat_stop_ids[rm->n_chat_stop_ids++] = id;
}

/* The test aid: SHOAL_TEST_FORCE_OUTPUT / SHOAL_TEST_FORCE_RULES (runner.h). */
static int
add_rule(struct runner_model *rm, const char *match, const char *output, struct sh_err *err)
{
    struct runner_force_rule *r = &rm->rules[rm->n_rules];
    int rc;

    memset(r, 0, sizeof *r);
    if (match && !(r->match = strdup(match)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    if ((rc = eng_tokenize(rm->tok, output, strlen(output), false, &r->ids, &r->n, err))) {
        free(r->match);
        return sh_err_wrap(err, "forced output");
    }
    rm->n_rules++;
    return 0;
}

static int load_rules(struct runner_model *rm, struct sh_err *err)
{
    const char *text = getenv("SHOAL_TEST_FORCE_OUTPUT");
    const char *rules = getenv("SHOAL_TEST_FORCE_RULES");
    cJSON *root = NULL;
    size_t n = 0;
    int rc = 0;

    if (rules && *rules) {
        root = cJSON_Parse(rules);
        if (!cJSON_IsArray(root)) {
            cJSON_Delete(root);
            return sh_err_set(err, SH_EINVAL,
                              "SHOAL_TEST_FORCE_RULES: expected a JSON array of "
                              "{\"match\", \"output\"}");
        }
        n = (size_t)cJSON_GetArraySize(root);
    }
    if (text && *text)
        n++;
    if (n == 0)
        return 0;
    if (!(rm->rules = calloc(n, sizeof *rm->rules))) {
        cJSON_Delete(root);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    for (const cJSON *it = root ? root->child : NULL; it && !rc; it = it->next) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "match");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, "output");
        if (!cJSON_IsString(o) || (m && !cJSON_IsString(m)))
            rc = sh_err_set(err, SH_EINVAL,
                            "SHOAL_TEST_FORCE_RULES: rule %zu: \"output\" (and \"match\" if "
                            "given) must be strings",
                            rm->n_rules);
        else
            rc = add_rule(rm, m ? m->valuestring : NULL, o->valuestring, err);
    }
    if (!rc && text && *text)
        rc = add_rule(rm, NULL, text, err);
    cJSON_Delete(root);
    if (!rc)
        SH_LOG(SH_LOG_WARN, MOD,
               "TEST AID active: %zu forced output rule(s) (SHOAL_TEST_FORCE_OUTPUT/_RULES)",
               rm->n_rules);
    return rc;
}

int runner_model_load(const char *dir, struct runner_model *rm, struct sh_err *err)
{
    char path[4096];
    struct eng_chat_parse_opts po;
    int rc;

    memset(rm, 0, sizeof *rm);
    rm->cfg_eos = -1;
    if ((rc = sh_path_join(path, sizeof path, dir, "tokenizer.json", err)) ||
        (rc = eng_tokenizer_load(path, &rm->tok, err)) ||
        (rc = eng_model_load(dir, &rm->model, err)))
        goto fail;
    rc = eng_chat_template_load(dir, &rm->tmpl, err);
    if (rc == SH_ENOTFOUND) {
        SH_LOG(SH_LOG_INFO, MOD, "%s: no chat template: completions only", dir);
        sh_err_clear(err);
    } else if (rc) {
        goto fail;
    }
    if (rm->tmpl) {
        const char *src = eng_chat_template_source(rm->tmpl, false);
        const char *src_tools = eng_chat_template_source(rm->tmpl, true);
        const char *eos = eng_chat_template_eos(rm->tmpl);
        for (size_t i = 0; i < sizeof turn_markers / sizeof turn_markers[0]; i++)
            if (strstr(src, turn_markers[i]) || strstr(src_tools, turn_markers[i]))
                add_stop(rm, eng_token_lookup(rm->tok, turn_markers[i]));
        if (eos) {
            rm->cfg_eos = eng_token_lookup(rm->tok, eos);
            if (rm->cfg_eos >= eng_model_config(rm->model)->vocab_size)
                rm->cfg_eos = -1;
            add_stop(rm, rm->cfg_eos);
        }
        eng_chat_parse_detect(src_tools, NULL, true, &po);
        rm->tool_format = po.format;
        eng_chat_parse_detect(src, NULL, false, &po);
        rm->thinking = po.reasoning;
    }
    if ((rc = load_rules(rm, err)))
        goto fail;
    return 0;
fail:
    runner_model_close(rm);
    return rc;
}

void runner_model_close(struct runner_model *rm)
{
    for (size_t i = 0; i < rm->n_rules; i++) {
        free(rm->rules[i].match);
        free(rm->rules[i].ids);
    }
    free(rm->rules);
    eng_chat_template_free(rm->tmpl);
    eng_model_free(rm->model);
    eng_tokenizer_free(rm->tok);
    memset(rm, 0, sizeof *rm);
}

static const char *family_name(enum eng_family f)
{
    switch (f) {
    case ENG_FAMILY_LLAMA:
        return "llama";
    case ENG_FAMILY_MISTRAL:
        return "mistral";
    case ENG_FAMILY_QWEN2:
        return "qwen2";
    case ENG_FAMILY_QWEN3:
        return "qwen3";
    case ENG_FAMILY_QWEN3_MOE:
        return "qwen3moe";
    }
    return "";
}

char *runner_ready_json(const struct runner_model *rm, int n_ctx, int slots)
{
    const struct eng_config *c = eng_model_config(rm->model);
    const struct eng_gen_defaults *d = eng_model_gen_defaults(rm->model);
    cJSON *o = cJSON_CreateObject(), *def;
    char dtype[16];
    char *s = NULL;
    size_t i;

    if (!o)
        return NULL;
    /* Ollama writes quantization levels in capitals ("BF16", "Q4_K_M"). */
    snprintf(dtype, sizeof dtype, "%s", eng_model_dtype_name(rm->model));
    for (i = 0; dtype[i]; i++)
        if (dtype[i] >= 'a' && dtype[i] <= 'z')
            dtype[i] = (char)(dtype[i] - 'a' + 'A');
    if (!cJSON_AddStringToObject(o, "family", family_name(c->family)) ||
        !cJSON_AddStringToObject(o, "dtype", dtype) ||
        !cJSON_AddNumberToObject(o, "params", (double)eng_model_n_params(rm->model)) ||
        !cJSON_AddNumberToObject(o, "bytes", (double)eng_model_weight_bytes(rm->model)) ||
        !cJSON_AddNumberToObject(o, "context", n_ctx) ||
        !cJSON_AddNumberToObject(o, "max_pos", c->max_pos) ||
        !cJSON_AddNumberToObject(o, "slots", slots) ||
        !cJSON_AddNumberToObject(o, "embedding", c->dim) ||
        !cJSON_AddNumberToObject(o, "layers", c->n_layers) ||
        !cJSON_AddNumberToObject(o, "heads", c->n_heads) ||
        !cJSON_AddNumberToObject(o, "kv_heads", c->n_kv_heads) ||
        !cJSON_AddNumberToObject(o, "vocab", c->vocab_size) ||
        !cJSON_AddStringToObject(o, "template",
                                 rm->tmpl ? eng_chat_template_source(rm->tmpl, false) : "") ||
        !cJSON_AddBoolToObject(o, "chat", rm->tmpl != NULL) ||
        !cJSON_AddBoolToObject(o, "tools", rm->tool_format != ENG_CHAT_FMT_PLAIN) ||
        !cJSON_AddBoolToObject(o, "thinking", rm->thinking) ||
        !cJSON_AddBoolToObject(o, "test_aid", rm->n_rules > 0))
        goto out;
    if (d->present) {
        if (!(def = cJSON_AddObjectToObject(o, "defaults")))
            goto out;
        /* What an unset parameter becomes (eng_gen_resolve): greedy when
         * generation_config says do_sample false. */
        if (!cJSON_AddNumberToObject(def, "temperature", d->do_sample ? d->temperature : 0) ||
            (d->do_sample && !cJSON_AddNumberToObject(def, "top_p", d->top_p)) ||
            (d->do_sample && !cJSON_AddNumberToObject(def, "top_k", d->top_k)) ||
            !cJSON_AddNumberToObject(def, "repetition_penalty", d->repetition_penalty))
            goto out;
    }
    s = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return s;
}
