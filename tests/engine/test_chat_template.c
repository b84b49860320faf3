/* tests/engine/test_chat_template.c: every chat-template fixture rendered
 * byte for byte as transformers did, through the API (templates loaded from
 * the tokenizer folders, checked against the fixture's sha256) and through
 * `shoal template`; template discovery (named lists, chat_template.jinja,
 * AddedToken objects) and error cases. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "common/file.h"
#include "common/json.h"
#include "engine/chat_template.h"
#include "lib/test.h"

static const char *const tokenizers[] = {"qwen3", "llama3_1", "deepseek_v3", "demo"};

static void model_dir(const char *tok, char *out, size_t cap)
{
    if (!strcmp(tok, "demo"))
        snprintf(out, cap, "%s", DEMO_MODEL_DIR);
    else
        snprintf(out, cap, "%s/tokenizers/%s", FIXTURES_DIR, tok);
}

static cJSON *load_fixture(const char *tok)
{
    char path[512];
    cJSON *fx = NULL;
    snprintf(path, sizeof path, "%s/chat-templates/%s.json", FIXTURES_DIR, tok);
    assert_int_equal(sh_json_parse_file(path, 1u << 24, &fx, NULL), 0);
    return fx;
}

static void check_sha256(const char *src, const char *want_hex)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    crypto_hash_sha256(h, (const unsigned char *)src, strlen(src));
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    assert_string_equal(hex, want_hex);
}

/* The template a case names: the loaded model's, or a fixture .jinja file
 * swapped in (keeping the model's special tokens). */
static struct eng_chat_template *case_template(const char *tok, const cJSON *fx, const cJSON *c)
{
    const char *which = cJSON_GetObjectItem(c, "template")->valuestring;
    const cJSON *sha = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "template_sha256"), which);
    struct eng_chat_template *ct = NULL;
    struct sh_err err;
    char dir[512];
    model_dir(tok, dir, sizeof dir);
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), 0);
    if (strcmp(which, "tokenizer_config") != 0) {
        char path[512], *src;
        size_t len;
        snprintf(path, sizeof path, "%s/chat-templates/%s", FIXTURES_DIR, which);
        assert_int_equal(sh_read_file(path, 1u << 20, &src, &len, NULL), 0);
        assert_int_equal(eng_chat_template_set_source(ct, src, len, &err), 0);
        free(src);
    }
    assert_non_null(sha);
    check_sha256(eng_chat_template_source(ct, false), sha->valuestring);
    return ct;
}

static void fixture_renders(void **state)
{
    int total = 0;
    (void)state;
    for (size_t f = 0; f < sizeof tokenizers / sizeof tokenizers[0]; f++) {
        cJSON *fx = load_fixture(tokenizers[f]), *c;
        const cJSON *ctx = cJSON_GetObjectItem(fx, "template_context");
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases"))
        {
            struct eng_chat_template *ct = case_template(tokenizers[f], fx, c);
            cJSON *kw = cJSON_GetObjectItem(c, "kwargs"), *k;
            cJSON *vars = cJSON_CreateObject();
            struct eng_chat_request req = {0};
            struct sh_err err;
            char *out = NULL;
            size_t len;
            int rc;
            /* the special tokens transformers passed are those of the config */
            const cJSON *bos = cJSON_GetObjectItem(ctx, "bos_token");
            const char *have_bos = eng_chat_template_bos(ct);
            assert_true((bos == NULL) == (have_bos == NULL));
            if (bos)
                assert_string_equal(have_bos, bos->valuestring);
            assert_string_equal(eng_chat_template_eos(ct),
                                cJSON_GetObjectItem(ctx, "eos_token")->valuestring);
            req.messages = cJSON_GetObjectItem(c, "messages");
            req.tools = cJSON_GetObjectItem(c, "tools");
            cJSON_ArrayForEach(k, kw)
            {
                if (!strcmp(k->string, "add_generation_prompt"))
                    req.add_generation_prompt = cJSON_IsTrue(k);
                else
                    cJSON_AddItemReferenceToObject(vars, k->string, k);
            }
            req.vars = vars;
            rc = eng_chat_template_render(ct, &req, &out, &len, &err);
            if (rc)
                fprintf(stderr, "%s/%s: %s\n", tokenizers[f],
                        cJSON_GetObjectItem(c, "name")->valuestring, err.msg);
            assert_int_equal(rc, 0);
            assert_string_equal(out, cJSON_GetObjectItem(c, "rendered")->valuestring);
            assert_int_equal(len, strlen(out));
            free(out);
            cJSON_Delete(vars);
            eng_chat_template_free(ct);
            total++;
        }
        cJSON_Delete(fx);
    }
    assert_int_equal(total, 27);
}

/* Runs argv, returns the exit status; stdout into *out (NUL-terminated). */
static int run_capture(char *const argv[], char **out, size_t *len)
{
    int fds[2], status;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    pid_t pid;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(fds[1], 1);
        dup2(devnull, 2);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t r;
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        r = read(fds[0], buf + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    buf[n] = '\0';
    waitpid(pid, &status, 0);
    *out = buf;
    *len = n;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_json(const char *path, const cJSON *v)
{
    char *text = cJSON_PrintUnformatted(v);
    assert_int_equal(sh_write_file_atomic(path, text, strlen(text), 0600, NULL), 0);
    free(text);
}

static void cli_reproduces_fixtures(void **state)
{
    const char *bin = getenv("SHOAL_BIN");
    char tmpdir[] = "/tmp/shoal-tmpl-XXXXXX", msgs[256], tools[256];
    int total = 0;
    (void)state;
    assert_non_null(bin);
    assert_non_null(mkdtemp(tmpdir));
    snprintf(msgs, sizeof msgs, "%s/messages.json", tmpdir);
    snprintf(tools, sizeof tools, "%s/tools.json", tmpdir);
    for (size_t f = 0; f < sizeof tokenizers / sizeof tokenizers[0]; f++) {
        cJSON *fx = load_fixture(tokenizers[f]), *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "cases"))
        {
            char dir[512], tmpl[512], vars[8][256], *argv[32], *out;
            const cJSON *k, *t = cJSON_GetObjectItem(c, "tools");
            const char *which = cJSON_GetObjectItem(c, "template")->valuestring;
            int argc = 0, nv = 0;
            size_t len;
            model_dir(tokenizers[f], dir, sizeof dir);
            write_json(msgs, cJSON_GetObjectItem(c, "messages"));
            argv[argc++] = (char *)bin;
            argv[argc++] = "template";
            argv[argc++] = "--model";
            argv[argc++] = dir;
            argv[argc++] = "--messages";
            argv[argc++] = msgs;
            if (cJSON_IsArray(t)) {
                write_json(tools, t);
                argv[argc++] = "--tools";
                argv[argc++] = tools;
            }
            if (strcmp(which, "tokenizer_config") != 0) {
                snprintf(tmpl, sizeof tmpl, "%s/chat-templates/%s", FIXTURES_DIR, which);
                argv[argc++] = "--template";
                argv[argc++] = tmpl;
            }
            cJSON_ArrayForEach(k, cJSON_GetObjectItem(c, "kwargs"))
            {
                char *v;
                if (!strcmp(k->string, "add_generation_prompt")) {
                    if (cJSON_IsTrue(k))
                        argv[argc++] = "--add-generation-prompt";
                    continue;
                }
                v = cJSON_PrintUnformatted(k);
                snprintf(vars[nv], sizeof vars[nv], "%s=%s", k->string, v);
                free(v);
                argv[argc++] = "--var";
                argv[argc++] = vars[nv++];
            }
            argv[argc] = NULL;
            assert_int_equal(run_capture(argv, &out, &len), 0);
            assert_int_equal(len, strlen(cJSON_GetObjectItem(c, "rendered")->valuestring));
            assert_string_equal(out, cJSON_GetObjectItem(c, "rendered")->valuestring);
            free(out);
            total++;
        }
        cJSON_Delete(fx);
    }
    assert_int_equal(total, 27);
    {
        /* usage errors exit 2, failures 1, and nothing reaches stdout */
        char *usage[] = {(char *)bin, "template", NULL};
        char *bad_model[] = {(char *)bin, "template", "--model", tmpdir, "--messages", msgs, NULL};
        char *bad_var[] = {(char *)bin, "template", "--messages", msgs, "--var", "x=abc", NULL};
        char *out;
        size_t len;
        assert_int_equal(run_capture(usage, &out, &len), 2);
        assert_int_equal(len, 0);
        free(out);
        assert_int_equal(run_capture(bad_model, &out, &len), 1);
        assert_int_equal(len, 0);
        free(out);
        assert_int_equal(run_capture(bad_var, &out, &len), 2);
        free(out);
    }
    unlink(msgs);
    unlink(tools);
    rmdir(tmpdir);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(sh_write_file_atomic(path, text, strlen(text), 0600, NULL), 0);
}

static char *render_simple(const struct eng_chat_template *ct,
                           const char *messages_json,
                           const char *tools_json,
                           int *rc,
                           struct sh_err *err)
{
    cJSON *m = cJSON_Parse(messages_json), *t = tools_json ? cJSON_Parse(tools_json) : NULL;
    struct eng_chat_request req = {.messages = m, .tools = t, .add_generation_prompt = true};
    char *out = NULL;
    size_t len;
    *rc = eng_chat_template_render(ct, &req, &out, &len, err);
    cJSON_Delete(m);
    cJSON_Delete(t);
    return out;
}

static void template_discovery(void **state)
{
    char dir[] = "/tmp/shoal-tmpl-XXXXXX", path[512];
    struct eng_chat_template *ct = NULL;
    struct sh_err err;
    char *out;
    int rc;
    (void)state;
    assert_non_null(mkdtemp(dir));
    /* nothing there */
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), SH_ENOTFOUND);
    /* a named list: tool_use with tools, default without; AddedToken objects */
    write_text(dir, "tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<B>\", \"lstrip\": false}, \"eos_token\": \"<E>\","
               " \"chat_template\": [{\"name\": \"default\", \"template\": \"D{{ bos_token }}\"},"
               " {\"name\": \"tool_use\", \"template\": \"T{{ tools|length }}{{ eos_token }}\"}]}");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), 0);
    assert_string_equal(eng_chat_template_bos(ct), "<B>");
    out = render_simple(ct, "[]", NULL, &rc, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "D<B>");
    free(out);
    out = render_simple(ct, "[]", "[{\"type\": \"function\"}]", &rc, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "T1<E>");
    free(out);
    eng_chat_template_free(ct);
    /* chat_template.jinja beside the config wins, as in transformers */
    write_text(dir, "chat_template.jinja", "J{{ messages[0].content }}\n");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), 0);
    out = render_simple(ct, "[{\"role\": \"user\", \"content\": \"hi\"}]", NULL, &rc, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Jhi");
    free(out);
    /* bad input: messages not an array, a message not an object */
    assert_null(render_simple(ct, "{}", NULL, &rc, &err));
    assert_int_equal(rc, SH_EINVAL);
    assert_null(render_simple(ct, "[1]", NULL, &rc, &err));
    assert_int_equal(rc, SH_EINVAL);
    eng_chat_template_free(ct);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    unlink(path);
    /* malformed shapes and template syntax errors name the problem */
    write_text(dir, "tokenizer_config.json", "{\"chat_template\": 5}");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "chat_template must be a string"));
    write_text(dir, "tokenizer_config.json", "{\"chat_template\": \"{% if x %}\"}");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "tokenizer_config.json: chat template: line 1 col 11"));
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": 3, \"chat_template\": \"x\"}");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), SH_EMALFORMED);
    write_text(dir, "tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"x\", "
               "\"template\": \"X\"}]}");
    assert_int_equal(eng_chat_template_load(dir, &ct, &err), 0);
    assert_null(render_simple(ct, "[]", NULL, &rc, &err));
    assert_int_equal(rc, SH_EINVAL);
    eng_chat_template_free(ct);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    rmdir(dir);
}

static void raise_exception_reaches_caller(void **state)
{
    struct eng_chat_template *ct = NULL;
    struct sh_err err;
    char path[512], *src, *out;
    size_t len;
    int rc;
    (void)state;
    snprintf(path, sizeof path, "%s/chat-templates/llama3_1_official.jinja", FIXTURES_DIR);
    assert_int_equal(sh_read_file(path, 1u << 20, &src, &len, NULL), 0);
    assert_int_equal(
        eng_chat_template_from_string(src, len, "<|begin_of_text|>", "<|eot_id|>", &ct, &err), 0);
    free(src);
    out = render_simple(ct,
                        "[{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", "
                        "\"tool_calls\": [{\"function\": {\"name\": \"a\", \"arguments\": {}}}, "
                        "{\"function\": {\"name\": \"b\", \"arguments\": {}}}]}]",
                        "[{\"type\": \"function\"}]", &rc, &err);
    assert_null(out);
    assert_int_equal(rc, SH_EINVAL);
    assert_string_equal(err.msg, "This model only supports single tool-calls at once!");
    eng_chat_template_free(ct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_renders),
        cmocka_unit_test(cli_reproduces_fixtures),
        cmocka_unit_test(template_discovery),
        cmocka_unit_test(raise_exception_reaches_caller),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
