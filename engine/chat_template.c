/* engine/chat_template.c: finds a model's chat template and special tokens
 * (the only file I/O here is the loader) and renders messages with the
 * variables transformers passes to the template. */
#include "engine/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/jinja.h"

#define NTOKENS 7

static const char *const token_names[NTOKENS] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                 "pad_token", "cls_token", "mask_token"};

struct named_template {
    char *name; /* NULL for a single unnamed template */
    char *src;
    struct eng_jinja *jinja;
};

struct eng_chat_template {
    struct named_template *t;
    size_t n;
    char *tokens[NTOKENS]; /* NULL where the config has none */
};

void eng_chat_template_free(struct eng_chat_template *ct)
{
    if (!ct)
        return;
    for (size_t i = 0; i < ct->n; i++) {
        free(ct->t[i].name);
        free(ct->t[i].src);
        eng_jinja_free(ct->t[i].jinja);
    }
    free(ct->t);
    for (int k = 0; k < NTOKENS; k++)
        free(ct->tokens[k]);
    free(ct);
}

static int add_template(
    struct eng_chat_template *ct, const char *name, const char *src, size_t len, struct sh_err *err)
{
    struct named_template *nt, *grown;
    int rc;
    grown = realloc(ct->t, (ct->n + 1) * sizeof *ct->t);
    if (!grown)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    ct->t = grown;
    nt = &ct->t[ct->n];
    memset(nt, 0, sizeof *nt);
    nt->src = malloc(len + 1);
    nt->name = name ? strdup(name) : NULL;
    if (!nt->src || (name && !nt->name)) {
        free(nt->src);
        free(nt->name);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    memcpy(nt->src, src, len);
    nt->src[len] = '\0';
    rc = eng_jinja_compile(src, len, &nt->jinja, err);
    if (rc) {
        free(nt->src);
        free(nt->name);
        return sh_err_wrap(err, "chat template%s%s", name ? " " : "", name ? name : "");
    }
    ct->n++;
    return 0;
}

int eng_chat_template_from_string(const char *src,
                                  size_t len,
                                  const char *bos_token,
                                  const char *eos_token,
                                  struct eng_chat_template **out,
                                  struct sh_err *err)
{
    struct eng_chat_template *ct = calloc(1, sizeof *ct);
    int rc;
    if (!ct)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    if ((bos_token && !(ct->tokens[0] = strdup(bos_token))) ||
        (eos_token && !(ct->tokens[1] = strdup(eos_token)))) {
        eng_chat_template_free(ct);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    rc = add_template(ct, NULL, src, len, err);
    if (rc) {
        eng_chat_template_free(ct);
        return rc;
    }
    *out = ct;
    return 0;
}

int eng_chat_template_set_source(struct eng_chat_template *ct,
                                 const char *src,
                                 size_t len,
                                 struct sh_err *err)
{
    struct eng_chat_template fresh = {0};
    int rc = add_template(&fresh, NULL, src, len, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < ct->n; i++) {
        free(ct->t[i].name);
        free(ct->t[i].src);
        eng_jinja_free(ct->t[i].jinja);
    }
    free(ct->t);
    ct->t = fresh.t;
    ct->n = fresh.n;
    return 0;
}

/* A special token: a string, or an AddedToken object {"content": ...}. */
static int read_token(const cJSON *cfg, const char *key, char **out, struct sh_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsString(v))
        s = v->valuestring;
    else if (cJSON_IsObject(v) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "content")))
        s = cJSON_GetObjectItemCaseSensitive(v, "content")->valuestring;
    else
        return sh_err_set(err, SH_EMALFORMED,
                          "tokenizer_config.json: %s must be a string or {\"content\": string}",
                          key);
    if (!(*out = strdup(s)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    return 0;
}

static int
load_config_templates(struct eng_chat_template *ct, const cJSON *tmpl, struct sh_err *err)
{
    const cJSON *item;
    int rc;
    if (cJSON_IsString(tmpl))
        return add_template(ct, NULL, tmpl->valuestring, strlen(tmpl->valuestring), err);
    if (!cJSON_IsArray(tmpl))
        return sh_err_set(err, SH_EMALFORMED,
                          "tokenizer_config.json: chat_template must be a string or a list of "
                          "{\"name\", \"template\"}");
    cJSON_ArrayForEach(item, tmpl)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(item, "template");
        if (!cJSON_IsString(name) || !cJSON_IsString(src))
            return sh_err_set(err, SH_EMALFORMED,
                              "tokenizer_config.json: chat_template list entries need string "
                              "\"name\" and \"template\"");
        rc = add_template(ct, name->valuestring, src->valuestring, strlen(src->valuestring), err);
        if (rc)
            return rc;
    }
    if (ct->n == 0)
        return sh_err_set(err, SH_EMALFORMED, "tokenizer_config.json: chat_template list is empty");
    return 0;
}

int eng_chat_template_load(const char *model_dir,
                           struct eng_chat_template **out,
                           struct sh_err *err)
{
    char path[4096], *text = NULL;
    size_t len;
    cJSON *cfg = NULL;
    struct eng_chat_template *ct = calloc(1, sizeof *ct);
    int rc;

    if (!ct)
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    if ((rc = sh_path_join(path, sizeof path, model_dir, "tokenizer_config.json", err)) != 0)
        goto fail;
    rc = sh_json_parse_file(path, ENG_CHAT_TEMPLATE_CONFIG_MAX, &cfg, err);
    if (rc && rc != SH_ENOTFOUND)
        goto fail;
    if (cfg) {
        if (!cJSON_IsObject(cfg)) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: not a JSON object", path);
            goto fail;
        }
        for (int k = 0; k < NTOKENS; k++)
            if ((rc = read_token(cfg, token_names[k], &ct->tokens[k], err)) != 0)
                goto fail;
    }
    if ((rc = sh_path_join(path, sizeof path, model_dir, "chat_template.jinja", err)) != 0)
        goto fail;
    rc = sh_read_file(path, ENG_JINJA_MAX_SOURCE, &text, &len, err);
    if (rc == 0) {
        rc = add_template(ct, NULL, text, len, err);
        if (rc)
            sh_err_wrap(err, "%s", path);
    } else if (rc == SH_ENOTFOUND) {
        const cJSON *tmpl = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
        if (!tmpl || cJSON_IsNull(tmpl)) {
            rc = sh_err_set(err, SH_ENOTFOUND,
                            "%s: no chat template (neither chat_template.jinja nor a "
                            "chat_template in tokenizer_config.json)",
                            model_dir);
            goto fail;
        }
        rc = load_config_templates(ct, tmpl, err);
        if (rc)
            sh_err_wrap(err, "%s/tokenizer_config.json", model_dir);
    }
    if (rc)
        goto fail;
    free(text);
    cJSON_Delete(cfg);
    *out = ct;
    return 0;
fail:
    free(text);
    cJSON_Delete(cfg);
    eng_chat_template_free(ct);
    return rc;
}

static const struct named_template *pick(const struct eng_chat_template *ct, bool has_tools)
{
    const struct named_template *def = NULL;
    if (ct->n == 1 && !ct->t[0].name)
        return &ct->t[0];
    for (size_t i = 0; i < ct->n; i++) {
        if (has_tools && !strcmp(ct->t[i].name, "tool_use"))
            return &ct->t[i];
        if (!strcmp(ct->t[i].name, "default"))
            def = &ct->t[i];
    }
    return def;
}

const char *eng_chat_template_source(const struct eng_chat_template *ct, bool has_tools)
{
    const struct named_template *t = pick(ct, has_tools);
    return t ? t->src : NULL;
}

const char *eng_chat_template_bos(const struct eng_chat_template *ct)
{
    return ct->tokens[0];
}

const char *eng_chat_template_eos(const struct eng_chat_template *ct)
{
    return ct->tokens[1];
}

int eng_chat_template_render(const struct eng_chat_template *ct,
                             const struct eng_chat_request *req,
                             char **out,
                             size_t *len,
                             struct sh_err *err)
{
    const struct named_template *t;
    const cJSON *m, *v;
    cJSON *vars;
    bool has_tools = req->tools && !cJSON_IsNull(req->tools);
    int rc;

    if (!cJSON_IsArray(req->messages))
        return sh_err_set(err, SH_EINVAL, "messages must be a JSON array");
    cJSON_ArrayForEach(m, req->messages)
    {
        if (!cJSON_IsObject(m))
            return sh_err_set(err, SH_EINVAL, "each message must be a JSON object");
    }
    if (has_tools && !cJSON_IsArray(req->tools))
        return sh_err_set(err, SH_EINVAL, "tools must be a JSON array");
    if (req->vars && !cJSON_IsObject(req->vars))
        return sh_err_set(err, SH_EINVAL, "template variables must be a JSON object");
    t = pick(ct, has_tools);
    if (!t)
        return sh_err_set(err, SH_EINVAL,
                          "the model has several chat templates and none named \"default\"");
    /* The variables transformers passes: special tokens, then messages,
     * tools, documents, add_generation_prompt and the caller's kwargs.
     * Items are references: nothing of the caller's is copied or freed. */
    if (!(vars = cJSON_CreateObject()))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    for (int k = 0; k < NTOKENS; k++)
        if (ct->tokens[k] && !cJSON_AddStringToObject(vars, token_names[k], ct->tokens[k]))
            goto oom;
    if (!cJSON_AddItemReferenceToObject(vars, "messages", (cJSON *)req->messages))
        goto oom;
    if (has_tools ? !cJSON_AddItemReferenceToObject(vars, "tools", (cJSON *)req->tools)
                  : !cJSON_AddNullToObject(vars, "tools"))
        goto oom;
    if (!cJSON_AddNullToObject(vars, "documents") ||
        !cJSON_AddBoolToObject(vars, "add_generation_prompt", req->add_generation_prompt))
        goto oom;
    if (req->vars) {
        cJSON_ArrayForEach(v, req->vars)
        {
            if (!v->string)
                continue;
            cJSON_DeleteItemFromObjectCaseSensitive(vars, v->string);
            if (!cJSON_AddItemReferenceToObject(vars, v->string, (cJSON *)v))
                goto oom;
        }
    }
    rc = eng_jinja_render(t->jinja, vars, req->now, NULL, out, len, err);
    cJSON_Delete(vars);
    return rc;
oom:
    cJSON_Delete(vars);
    return sh_err_set(err, SH_ENOMEM, "out of memory");
}
