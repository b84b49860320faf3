/* agent/cmd_status.c: `shoal status`: asks a running node (GET /state and
 * GET /nodes over HTTP, libcurl) and prints the live cluster as that node
 * sees it: leader, term, epoch, members with their resources, links. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agent/cli.h"
#include "common/json.h"
#include "common/util.h"

#define DEFAULT_API "http://127.0.0.1:52415"
#define BODY_MAX    (8u << 20)

const char agent_status_usage[] =
    "usage: shoal status [--api URL] [--api-key KEY] [--json] [--timeout SECONDS]\n"
    "\n"
    "Prints the cluster as one running node sees it: its role, the leader, term\n"
    "and epoch, then every node it knows (member or not, link up or down from\n"
    "that node, address, cores, RAM, models).\n"
    "\n"
    "  --api URL          the node to ask (default $SHOAL_API, else " DEFAULT_API ")\n"
    "  --api-key KEY      its API key, if it has one (default $SHOAL_API_KEY)\n"
    "  --json             print {\"state\": GET /state, \"nodes\": GET /nodes} instead\n"
    "  --timeout SECONDS  give up after this long (default 5)\n"
    "\n"
    "Exits 1 with the reason when nothing answers at URL.\n";

struct body {
    struct sh_strbuf sb;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len;
    if (!sh_mul_size(size, n, &len) || sh_strbuf_append(&b->sb, p, len) != 0) {
        b->too_big = true;
        return 0;
    }
    return len;
}

/* GET url+path; *out is the parsed JSON (cJSON_Delete). Prints why on
 * failure and returns AGENT_EXIT_FAIL. */
static int get_json(const char *url, const char *path, const char *key, long timeout, cJSON **out)
{
    char full[2048], auth[1024], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdr = NULL;
    struct body b;
    long status = 0;
    CURL *h;
    CURLcode rc;
    int ret = AGENT_EXIT_FAIL;

    *out = NULL;
    if ((size_t)snprintf(full, sizeof full, "%s%s", url, path) >= sizeof full) {
        fprintf(stderr, "shoal status: --api URL too long\n");
        return AGENT_EXIT_USAGE;
    }
    sh_strbuf_init(&b.sb, BODY_MAX);
    b.too_big = false;
    if (!(h = curl_easy_init())) {
        fprintf(stderr, "shoal status: cannot start libcurl\n");
        return AGENT_EXIT_FAIL;
    }
    if (key && *key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdr = curl_slist_append(NULL, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (hdr)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) {
        fprintf(stderr, "shoal status: nothing answers at %s: %s\n", full,
                b.too_big   ? "reply too large"
                : errbuf[0] ? errbuf
                            : curl_easy_strerror(rc));
        goto out;
    }
    if (sh_json_parse(b.sb.buf ? b.sb.buf : "", b.sb.len, full, out, NULL) != 0 ||
        !cJSON_IsObject(*out)) {
        fprintf(stderr,
                "shoal status: %s answered HTTP %ld without a JSON object (is it a shoal "
                "agent?)\n",
                full, status);
        cJSON_Delete(*out);
        *out = NULL;
        goto out;
    }
    if (status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*out, "error");
        fprintf(stderr, "shoal status: %s: HTTP %ld: %s\n", full, status,
                cJSON_IsString(e) ? e->valuestring : "error");
        cJSON_Delete(*out);
        *out = NULL;
        goto out;
    }
    ret = AGENT_EXIT_OK;
out:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    sh_strbuf_free(&b.sb);
    return ret;
}

static const char *str(const cJSON *o, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool flag(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static void print_res(const cJSON *res)
{
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(res, "models"), *m;
    int n = 0;
    if (!cJSON_IsObject(res)) {
        printf("resources unknown");
        return;
    }
    printf("%.0f cores, %.1f GiB RAM (%.1f GiB free), ", num(res, "cores"),
           num(res, "ram_total") / (1 << 30), num(res, "ram_free") / (1 << 30));
    cJSON_ArrayForEach(m, models) if (cJSON_IsString(m))
        printf("%s%s", n++ ? ", " : "models: ", m->valuestring);
    if (n == 0)
        printf("no models");
}

static void print_text(const char *url, const cJSON *state, const cJSON *nodes)
{
    const cJSON *ep = cJSON_GetObjectItemCaseSensitive(state, "epoch");
    const cJSON *leader = cJSON_GetObjectItemCaseSensitive(state, "leader");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(nodes, "nodes"), *n;
    int members = 0, known = 0;

    printf("node %s '%s' at %s: %s, term %.0f, epoch %.0f, commit #%.0f\n", str(state, "node", "?"),
           str(state, "name", "?"), url, str(state, "role", "?"), num(state, "term"),
           num(ep, "number"), num(state, "commit_index"));
    if (cJSON_IsObject(leader))
        printf("leader: %s '%s', API %s\n", str(leader, "id", "?"), str(leader, "name", ""),
               str(leader, "api", "unknown"));
    else
        printf("leader: none known (an election or a new epoch is under way)\n");
    cJSON_ArrayForEach(n, list)
    {
        known++;
        members += flag(n, "member");
    }
    printf("nodes: %d known, %d member%s\n", known, members, members == 1 ? "" : "s");
    cJSON_ArrayForEach(n, list)
    {
        const cJSON *rtt = cJSON_GetObjectItemCaseSensitive(n, "rtt_ms");
        printf("  %s  %-16s %-22s %-7s ", str(n, "id", "?"), str(n, "name", ""),
               str(n, "addr", "-"), flag(n, "member") ? "member" : "-");
        if (flag(n, "self"))
            printf("this node  ");
        else if (cJSON_IsNumber(rtt))
            printf("link %s (%.2f ms)  ", str(n, "link", "?"), rtt->valuedouble);
        else
            printf("link %-4s  ", str(n, "link", "?"));
        print_res(cJSON_GetObjectItemCaseSensitive(n, "resources"));
        printf("%s\n", flag(n, "leader") ? "  [leader]" : "");
    }
}

int agent_cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"api", required_argument, NULL, 'a'},
        {"api-key", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find("status");
    const char *url = getenv("SHOAL_API"), *key = getenv("SHOAL_API_KEY");
    cJSON *state = NULL, *nodes = NULL;
    bool json = false;
    int64_t timeout = 5;
    char base[1024];
    size_t len;
    int c, rc;

    if (!url || !*url)
        url = DEFAULT_API;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 't':
            if (!sh_parse_i64(optarg, 1, 3600, &timeout))
                return agent_usage_error(cmd, "--timeout: expected 1..3600 seconds, got '%s'",
                                         optarg);
            break;
        default:
            return agent_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return agent_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    /* "host:port" alone means http://host:port; no trailing slash. */
    snprintf(base, sizeof base, "%s%s", strstr(url, "://") ? "" : "http://", url);
    len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        base[--len] = '\0';
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "shoal status: cannot start libcurl\n");
        return AGENT_EXIT_FAIL;
    }
    rc = get_json(base, "/state", key, (long)timeout, &state);
    if (rc == 0)
        rc = get_json(base, "/nodes", key, (long)timeout, &nodes);
    if (rc == 0 && json) {
        cJSON *doc = cJSON_CreateObject();
        char *text;
        cJSON_AddItemReferenceToObject(doc, "state", state);
        cJSON_AddItemReferenceToObject(doc, "nodes", nodes);
        text = cJSON_Print(doc);
        if (text)
            printf("%s\n", text);
        free(text);
        cJSON_Delete(doc);
    } else if (rc == 0) {
        print_text(base, state, nodes);
    }
    cJSON_Delete(state);
    cJSON_Delete(nodes);
    curl_global_cleanup();
    return rc;
}
