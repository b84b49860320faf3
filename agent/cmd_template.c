/* agent/cmd_template.c: `shoal template`: render a model's chat template for
 * a messages file and print the prompt exactly (no newline added), to check
 * what the server would send to the model. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agent/cli.h"
#include "common/file.h"
#include "common/json.h"
#include "engine/chat_template.h"

#define INPUT_MAX (64u << 20)

static int fail(const char *what, const struct sh_err *err)
{
    fprintf(stderr, "shoal template: %s%s%s\n", what ? what : "", what ? ": " : "",
            sh_err_msg(err));
    return AGENT_EXIT_FAIL;
}

/* --var NAME=JSON: the value is JSON (true, "01 Jan 2025", 3...). */
static int add_var(cJSON *vars, const char *spec, struct sh_err *err)
{
    const char *eq = strchr(spec, '=');
    char name[256];
    cJSON *val = NULL;
    int rc;
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof name)
        return sh_err_set(err, SH_EINVAL, "--var '%s': expected NAME=JSON", spec);
    memcpy(name, spec, (size_t)(eq - spec));
    name[eq - spec] = '\0';
    rc = sh_json_parse(eq + 1, strlen(eq + 1), "--var value", &val, err);
    if (rc)
        return sh_err_wrap(err, "--var %s (strings need JSON quotes, e.g. %s='\"text\"')", name,
                           name);
    cJSON_DeleteItemFromObjectCaseSensitive(vars, name);
    if (!cJSON_AddItemToObject(vars, name, val)) {
        cJSON_Delete(val);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    return 0;
}

int agent_cmd_template(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"messages", required_argument, NULL, 'M'},
        {"tools", required_argument, NULL, 't'},
        {"template", required_argument, NULL, 'T'},
        {"add-generation-prompt", no_argument, NULL, 'g'},
        {"var", required_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find("template");
    const char *model = NULL, *messages_path = NULL, *tools_path = NULL, *template_path = NULL;
    struct eng_chat_template *ct = NULL;
    struct eng_chat_request req = {0};
    struct sh_err err;
    cJSON *messages = NULL, *tools = NULL, *vars = cJSON_CreateObject();
    char *out = NULL, *src = NULL;
    size_t len;
    struct tm now_tm;
    time_t now = time(NULL);
    int c, status = AGENT_EXIT_FAIL;

    sh_err_clear(&err);
    if (!vars) {
        fprintf(stderr, "shoal template: out of memory\n");
        return AGENT_EXIT_FAIL;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'M':
            messages_path = optarg;
            break;
        case 't':
            tools_path = optarg;
            break;
        case 'T':
            template_path = optarg;
            break;
        case 'g':
            req.add_generation_prompt = true;
            break;
        case 'v':
            if (add_var(vars, optarg, &err)) {
                cJSON_Delete(vars);
                return agent_usage_error(cmd, "%s", sh_err_msg(&err));
            }
            break;
        default:
            cJSON_Delete(vars);
            return agent_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc || !messages_path) {
        cJSON_Delete(vars);
        return agent_usage_error(
            cmd, optind < argc ? "unexpected argument '%s'" : "--messages FILE.json is required%s",
            optind < argc ? argv[optind] : "");
    }
    if (!model)
        model = agent_default_model();
    if (sh_json_parse_file(messages_path, INPUT_MAX, &messages, &err)) {
        fail(NULL, &err);
        goto out;
    }
    /* a bare array, or {"messages": [...], "tools": [...]} */
    if (cJSON_IsObject(messages)) {
        req.messages = cJSON_GetObjectItemCaseSensitive(messages, "messages");
        req.tools = cJSON_GetObjectItemCaseSensitive(messages, "tools");
    } else {
        req.messages = messages;
    }
    if (tools_path) {
        if (sh_json_parse_file(tools_path, INPUT_MAX, &tools, &err)) {
            fail(NULL, &err);
            goto out;
        }
        req.tools = tools;
    }
    if (eng_chat_template_load(model, &ct, &err)) {
        if (!template_path || err.code != SH_ENOTFOUND) {
            fail(NULL, &err);
            goto out;
        }
        ct = NULL;
    }
    if (template_path) {
        if (sh_read_file(template_path, 4u << 20, &src, &len, &err)) {
            fail(NULL, &err);
            goto out;
        }
        if (ct ? eng_chat_template_set_source(ct, src, len, &err)
               : eng_chat_template_from_string(src, len, NULL, NULL, &ct, &err)) {
            fail(template_path, &err);
            goto out;
        }
    }
    req.vars = vars;
    req.now = localtime_r(&now, &now_tm);
    if (eng_chat_template_render(ct, &req, &out, &len, &err)) {
        fail("render", &err);
        goto out;
    }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) {
        fprintf(stderr, "shoal template: writing the prompt failed\n");
        goto out;
    }
    status = AGENT_EXIT_OK;
out:
    free(out);
    free(src);
    eng_chat_template_free(ct);
    cJSON_Delete(messages);
    cJSON_Delete(tools);
    cJSON_Delete(vars);
    return status;
}
