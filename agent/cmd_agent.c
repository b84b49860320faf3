/* agent/cmd_agent.c: `shoal agent`: flags -> struct agent_opts -> agent_run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/cli.h"
#include "common/util.h"
#include "engine/model.h"

const char agent_agent_usage[] =
    "usage: shoal agent [OPTIONS]\n"
    "\n"
    "Runs this machine's node: finds the other agents (mDNS on the LAN, or --peer),\n"
    "links to them (encrypted; with --cluster-key only to holders of the key), elects\n"
    "a leader over a replicated event log (DATA_DIR/events.db), and serves the HTTP API\n"
    "on --bind:--api-port: the cluster's (/health, /state, /nodes, /events) and the\n"
    "OpenAI (/v1/...) and Ollama (/api/...) APIs for the models below, each model in\n"
    "its own runner process.\n"
    "\n"
    "  --data-dir DIR     node state (default $XDG_DATA_HOME/shoal or ~/.local/share/shoal)\n"
    "  --name NAME        this node's name (default: the host name)\n"
    "  --bind ADDR        API address (default 127.0.0.1; 0.0.0.0 for every interface)\n"
    "  --api-port PORT    API port (default 52415)\n"
    "  --api-key KEY      require 'Authorization: Bearer KEY' on every route but /health\n"
    "                     (default: $SHOAL_API_KEY; none when unset)\n"
    "  --cors ORIGIN      allow browser requests from ORIGIN ('*' for any; default off)\n"
    "  --log-level LEVEL  error, warn, info (default) or debug\n"
    "  --peer-port PORT   peer link port, on every interface (default 52416; 0 = any\n"
    "                     free port, announced over mDNS)\n"
    "  --peer HOST:PORT   a peer to link to without mDNS (repeatable; PORT defaults\n"
    "                     to 52416; list every machine, this one included, on each)\n"
    "  --cluster-key FILE only link to peers holding the same key (`shoal keygen FILE`)\n"
    "  --no-mdns          do not publish or browse mDNS (static --peer only)\n"
    "  --test-events N    test aid: once leader, append N node_info_updated events\n"
    "                     about this node, back to back (exercises the log under load)\n"
    "\n"
    "Models (default: $SHOAL_MODEL, else the demo model):\n"
    "  --model DIR        serve the model in DIR (repeatable); its id is the folder\n"
    "                     name, or Org/Name inside a Hugging Face cache\n"
    "  --models DIR       serve every model folder inside DIR (also a Hugging Face\n"
    "                     cache such as ~/.cache/huggingface/hub)\n"
    "  --no-models        serve no model\n"
    "  --slots N          concurrent generations per model (default 4)\n"
    "  --ctx N            context tokens per generation (default: the model's, at\n"
    "                     most 8192, less when RAM is short)\n"
    "  --queue N          requests that may wait per model when every slot is busy\n"
    "                     (default 32); more get 503 with Retry-After\n"
    "  --threads N        compute threads per model (default: physical cores)\n"
    "  --act-bits N       codes of the activations that 4-bit weights multiply in\n"
    "                     generation: 16 (default) or 8 (llama.cpp's rounding:\n"
    "                     faster, and lossy: logits move by about 0.1)\n"
    "\n"
    "SIGTERM or SIGINT stops the node cleanly (a leader hands over first).\n";

enum {
    OPT_DATA_DIR = 256,
    OPT_NAME,
    OPT_BIND,
    OPT_API_PORT,
    OPT_API_KEY,
    OPT_CORS,
    OPT_LOG_LEVEL,
    OPT_PEER_PORT,
    OPT_PEER,
    OPT_CLUSTER_KEY,
    OPT_NO_MDNS,
    OPT_TEST_EVENTS,
    OPT_MODEL,
    OPT_MODELS,
    OPT_NO_MODELS,
    OPT_SLOTS,
    OPT_CTX,
    OPT_QUEUE,
    OPT_THREADS,
    OPT_ACT_BITS,
};

/* --slots, --ctx, --queue, --threads: an integer in [min, max]. */
static int parse_count(const struct agent_cmd *cmd,
                       const char *flag,
                       const char *arg,
                       int64_t min,
                       int64_t max,
                       int *out)
{
    int64_t v;

    if (!sh_parse_i64(arg, min, max, &v))
        return agent_usage_error(cmd, "%s: expected %lld to %lld, got '%s'", flag, (long long)min,
                                 (long long)max, arg);
    *out = (int)v;
    return 0;
}

int agent_cmd_agent(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"name", required_argument, NULL, OPT_NAME},
        {"bind", required_argument, NULL, OPT_BIND},
        {"api-port", required_argument, NULL, OPT_API_PORT},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"cors", required_argument, NULL, OPT_CORS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"peer-port", required_argument, NULL, OPT_PEER_PORT},
        {"peer", required_argument, NULL, OPT_PEER},
        {"cluster-key", required_argument, NULL, OPT_CLUSTER_KEY},
        {"no-mdns", no_argument, NULL, OPT_NO_MDNS},
        {"test-events", required_argument, NULL, OPT_TEST_EVENTS},
        {"model", required_argument, NULL, OPT_MODEL},
        {"models", required_argument, NULL, OPT_MODELS},
        {"no-models", no_argument, NULL, OPT_NO_MODELS},
        {"slots", required_argument, NULL, OPT_SLOTS},
        {"ctx", required_argument, NULL, OPT_CTX},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"act-bits", required_argument, NULL, OPT_ACT_BITS},
        {NULL, 0, NULL, 0},
    };
    const struct agent_cmd *cmd = agent_cmd_find("agent");
    struct agent_opts o;
    const char *env_key = getenv("SHOAL_API_KEY");
    int c, level, rc = 0;
    int64_t port;
    uint64_t count;

    agent_opts_init(&o);
    if (env_key && *env_key)
        o.api_key = env_key;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA_DIR:
            if (strlen(optarg) >= sizeof o.data_dir || optarg[0] == '\0')
                return agent_usage_error(cmd, "--data-dir: bad path");
            snprintf(o.data_dir, sizeof o.data_dir, "%s", optarg);
            break;
        case OPT_NAME:
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof o.name)
                return agent_usage_error(cmd, "--name: 1 to %d bytes", AGENT_NAME_MAX - 1);
            snprintf(o.name, sizeof o.name, "%s", optarg);
            break;
        case OPT_BIND:
            o.bind = optarg;
            break;
        case OPT_API_PORT:
            if (!sh_parse_i64(optarg, 0, 65535, &port))
                return agent_usage_error(cmd, "--api-port: expected 0..65535, got '%s'", optarg);
            o.api_port = (uint16_t)port;
            break;
        case OPT_API_KEY:
            if (optarg[0] == '\0')
                return agent_usage_error(cmd, "--api-key: empty key");
            o.api_key = optarg;
            break;
        case OPT_CORS:
            o.cors_origin = optarg;
            break;
        case OPT_LOG_LEVEL:
            level = sh_log_parse_level(optarg);
            if (level < 0)
                return agent_usage_error(cmd, "--log-level: expected error|warn|info|debug");
            o.log_level = (enum sh_log_level)level;
            break;
        case OPT_PEER_PORT:
            if (!sh_parse_i64(optarg, 0, 65535, &port))
                return agent_usage_error(cmd, "--peer-port: expected 0..65535, got '%s'", optarg);
            o.peer_port = (uint16_t)port;
            break;
        case OPT_PEER:
            if (optarg[0] == '\0')
                return agent_usage_error(cmd, "--peer: empty HOST:PORT");
            if (o.n_peers == AGENT_MAX_PEERS)
                return agent_usage_error(cmd, "--peer: at most %d peers", AGENT_MAX_PEERS);
            o.peers[o.n_peers++] = optarg;
            break;
        case OPT_CLUSTER_KEY:
            if (optarg[0] == '\0')
                return agent_usage_error(cmd, "--cluster-key: empty path");
            o.cluster_key = optarg;
            break;
        case OPT_NO_MDNS:
            o.no_mdns = true;
            break;
        case OPT_TEST_EVENTS:
            if (!sh_parse_u64(optarg, 1000000000, &count))
                return agent_usage_error(cmd, "--test-events: expected 0..10^9, got '%s'", optarg);
            o.test_events = count;
            break;
        case OPT_MODEL:
            if (o.serve.n_model_dirs == SERVE_MAX_MODELS)
                return agent_usage_error(cmd, "--model: at most %d", SERVE_MAX_MODELS);
            o.serve.model_dirs[o.serve.n_model_dirs++] = optarg;
            break;
        case OPT_MODELS:
            if (o.serve.n_models_roots == SERVE_MAX_MODELS)
                return agent_usage_error(cmd, "--models: at most %d", SERVE_MAX_MODELS);
            o.serve.models_roots[o.serve.n_models_roots++] = optarg;
            break;
        case OPT_NO_MODELS:
            o.serve.none = true;
            break;
        case OPT_SLOTS:
            rc = parse_count(cmd, "--slots", optarg, 1, 64, &o.serve.slots);
            break;
        case OPT_CTX:
            rc = parse_count(cmd, "--ctx", optarg, 2, 1 << 24, &o.serve.ctx);
            break;
        case OPT_QUEUE:
            rc = parse_count(cmd, "--queue", optarg, 1, 100000, &o.serve.queue);
            break;
        case OPT_THREADS:
            rc = parse_count(cmd, "--threads", optarg, 1, 512, &o.serve.threads);
            break;
        case OPT_ACT_BITS:
            if (!eng_act_bits_parse(optarg, &o.serve.act_bits))
                rc = agent_usage_error(cmd, "--act-bits: 16 or 8, got \"%s\"", optarg);
            break;
        default:
            return agent_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return agent_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.serve.none && (o.serve.n_model_dirs || o.serve.n_models_roots))
        return agent_usage_error(cmd, "--no-models: and --model/--models?");
    o.serve.log_level = o.log_level;
    sh_log_init(o.log_level, "-", NULL);
    return agent_run(&o);
}
