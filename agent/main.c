/* agent/main.c: the `shoal` binary: dispatch to a subcommand, `help`,
 * `--version`. Each subcommand lives in its own agent/cmd_<name>.c. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cli.h"
#include "common/err.h"
#include "engine/model.h"

static int cmd_help(int argc, char **argv);

static const struct agent_cmd commands[] = {
    {"help", "list commands, or show one command's help", "usage: shoal help [COMMAND]\n",
     cmd_help},
    {"version", "print the version", "usage: shoal version\n", agent_cmd_version},
    {"agent", "run this machine's node (the API on :52415)", agent_agent_usage, agent_cmd_agent},
    {"replay", "print a node's event log as a timeline and the state it folds to",
     agent_replay_usage, agent_cmd_replay},
    {"status", "show the live cluster as a running node sees it", agent_status_usage,
     agent_cmd_status},
    {"logits", "evaluate token ids with a model and print the top logits",
     "usage: shoal logits [--model DIR] --ids ID,ID,... [--top K] [--out FILE] [--threads N]\n"
     "\n"
     "Runs the prompt through the model and prints one JSON line per position:\n"
     "  {\"pos\":I,\"top\":[[ID,LOGIT],...]}  (the K largest logits, best first)\n"
     "\n"
     "  --model DIR    Hugging Face model folder (default: $SHOAL_MODEL or the demo model)\n"
     "  --ids LIST     token ids, comma-separated\n"
     "  --top K        logits per position (default 5)\n"
     "  --out FILE     write the last position's logits as float32 little-endian\n"
     "  --threads N    compute threads (default: physical cores)\n",
     agent_cmd_logits},
    {"tokenize", "token ids of a text (JSON array)",
     "usage: shoal tokenize [--model DIR] --text TEXT [--special]\n"
     "Encodes TEXT with DIR/tokenizer.json and prints the ids as a JSON array.\n"
     "  --model DIR   model directory (default: $SHOAL_MODEL, else the demo model)\n"
     "  --text TEXT   the text to encode (UTF-8)\n"
     "  --special     add the special tokens the tokenizer's post-processor adds\n"
     "                (e.g. Llama 3's <|begin_of_text|>)\n",
     agent_cmd_tokenize},
    {"detokenize", "text of token ids",
     "usage: shoal detokenize [--model DIR] --ids 1,2,3 [--skip-special]\n"
     "Decodes the ids with DIR/tokenizer.json and prints the text exactly (no\n"
     "newline is added).\n"
     "  --model DIR      model directory (default: $SHOAL_MODEL, else the demo model)\n"
     "  --ids LIST       comma-separated ids; \"[1, 2, 3]\" as tokenize prints works too\n"
     "  --skip-special   leave out tokens flagged special\n",
     agent_cmd_detokenize},
    {"keygen", "write a new cluster key to a file",
     "usage: shoal keygen [--force] FILE\n"
     "\n"
     "Writes a new random 32-byte cluster key to FILE as 64 hex digits and a\n"
     "newline, readable by its owner only (mode 0600), and prints its\n"
     "fingerprint. Copy the file to every machine of the cluster and start each\n"
     "agent with it: peers without the same key are refused, and mDNS services\n"
     "with another fingerprint are ignored.\n"
     "\n"
     "  -f, --force   replace FILE if it exists (default: refuse)\n",
     agent_cmd_keygen},
    {"template", "render a model's chat template for a messages file",
     "usage: shoal template [--model DIR] --messages FILE.json [--tools FILE.json]\n"
     "                      [--add-generation-prompt] [--var NAME=JSON]... [--template FILE]\n"
     "\n"
     "Renders the model's own Jinja chat template (chat_template.jinja or\n"
     "tokenizer_config.json) as transformers' apply_chat_template does and prints\n"
     "the prompt exactly, with no newline added.\n"
     "\n"
     "  --model DIR              model folder (default: $SHOAL_MODEL or the demo model)\n"
     "  --messages FILE.json     a JSON array of messages, or {\"messages\": [...],\n"
     "                           \"tools\": [...]}\n"
     "  --tools FILE.json        a JSON array of tool (function) specs\n"
     "  --add-generation-prompt  end with the assistant turn's opening\n"
     "  --var NAME=JSON          an extra template variable, e.g. enable_thinking=false\n"
     "                           or date_string='\"01 Jan 2025\"'\n"
     "  --template FILE          use this Jinja file instead of the model's template\n",
     agent_cmd_template},
    {"run", "generate text from a prompt with a model, streamed", agent_run_usage, agent_cmd_run},
    {"runner", "(internal) the model process `shoal agent` starts", agent_runner_usage,
     agent_cmd_runner},
    {"quantize", "write an MLX 4/8-bit quantized copy of a model folder",
     "usage: shoal quantize [--model DIR] --bits 4|8 [--group-size 64] [--dtype bf16|f16|f32]\n"
     "                      --out DIR\n"
     "\n"
     "Writes the model quantized as mlx_lm.convert -q does (MLX affine: U32 codes,\n"
     "scales and biases per group; the files mlx-community publishes), which\n"
     "shoal and MLX both load. Linear and embedding weights are quantized; norms and\n"
     "biases stay in float.\n"
     "\n"
     "  --model DIR       Hugging Face model folder, F32/F16/BF16 (default: $SHOAL_MODEL\n"
     "                    or the demo model)\n"
     "  --bits N          4 or 8\n"
     "  --group-size N    weights sharing a scale and bias: 32, 64 (default) or 128\n"
     "  --dtype T         dtype of scales, biases and float tensors (default: the model's)\n"
     "  --out DIR         the new folder (must not exist)\n",
     agent_cmd_quantize},
    {"bench", "measure prompt and generation speed of a model (llama-bench style)",
     "usage: shoal bench [--model DIR] [-p 128] [-n 64] [-t LIST] [-r 5] [--kv-type f32|f16]\n"
     "                   [--act-bits 16|8] [--no-bandwidth] [--json]\n"
     "\n"
     "Prompt processing (ppP: P tokens from an empty cache) and token generation\n"
     "(tgN: N tokens one at a time), tokens/s as mean +- sd over the repetitions\n"
     "after one warm-up run, per thread count. Generation reads every weight once\n"
     "per token, so it is bounded by the memory read bandwidth, measured here per\n"
     "thread count: limit = bandwidth / bytes read per token, and the fraction\n"
     "reached. Run it on a quiet machine.\n"
     "\n"
     "  --model DIR        model folder (default: $SHOAL_MODEL or the demo model)\n"
     "  -p, --n-prompt N   prompt tokens (default 128; 0 skips the test)\n"
     "  -n, --n-gen N      generated tokens (default 64; 0 skips the test)\n"
     "  -t, --threads LIST comma-separated thread counts (default: physical cores)\n"
     "  -r, --repetitions N  timed runs per test (default 5)\n"
     "  --kv-type T        KV cache elements: f32 (default) or f16\n"
     "  --act-bits N       codes of the activations that 4-bit weights multiply in\n"
     "                     generation: 16 (default) or 8 (llama.cpp's rounding: faster,\n"
     "                     and lossy: logits move by about 0.1)\n"
     "  --no-bandwidth     skip the bandwidth probe (1 GiB, about a second per count)\n"
     "  --json             llama-bench style JSON array instead of the table\n",
     agent_cmd_bench},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct agent_cmd *agent_cmd_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

const char *agent_default_model(void)
{
    const char *env = getenv("SHOAL_MODEL");
    return env && *env ? env : SHOAL_DEMO_MODEL_DIR;
}

int agent_usage_error(const struct agent_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "shoal %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `shoal %s --help`)\n", cmd->name);
    return AGENT_EXIT_USAGE;
}

int agent_option_error(const struct agent_cmd *cmd, int c, char **argv)
{
    if (c == ':')
        return agent_usage_error(cmd, "%s needs a value", argv[optind - 1]);
    return agent_usage_error(cmd, "unknown option %s", argv[optind - 1]);
}

static void print_overview(FILE *out)
{
    fprintf(out,
            "shoal %s: several machines, one LLM server\n\n"
            "usage: shoal COMMAND [OPTIONS]\n\ncommands:\n",
            SHOAL_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`shoal COMMAND --help` shows a command's options.\n");
}

static int cmd_help(int argc, char **argv)
{
    const struct agent_cmd *cmd;

    if (argc < 2) {
        print_overview(stdout);
        return AGENT_EXIT_OK;
    }
    cmd = agent_cmd_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "shoal help: unknown command '%s'\n", argv[1]);
        return AGENT_EXIT_USAGE;
    }
    fputs(cmd->usage, stdout);
    return AGENT_EXIT_OK;
}

int agent_cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("shoal %s\n", SHOAL_VERSION);
    return AGENT_EXIT_OK;
}

int main(int argc, char **argv)
{
    const struct agent_cmd *cmd;
    struct sh_err err = {0};

    if (argc < 2) {
        print_overview(stderr);
        return AGENT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv);
    if (strcmp(argv[1], "--version") == 0)
        return agent_cmd_version(1, argv);
    cmd = agent_cmd_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "shoal: unknown command '%s' (try `shoal help`)\n", argv[1]);
        return AGENT_EXIT_USAGE;
    }
    /* `shoal CMD --help` anywhere in the arguments prints the command's help. */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cmd->usage, stdout);
            return AGENT_EXIT_OK;
        }
    }
    /* Before any command loads a model or starts threads (model.h). */
    if (eng_kernels_select(getenv("SHOAL_KERNELS"), &err) != 0) {
        fprintf(stderr, "shoal: SHOAL_KERNELS: %s\n", sh_err_msg(&err));
        return AGENT_EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
