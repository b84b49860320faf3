/* agent/cli.h: the subcommand table behind the one `shoal` binary, and small
 * helpers the commands share for argument handling. Internal to agent/.
 *
 * A command gets argc/argv with argv[0] = its own name (so getopt_long works
 * as usual) and returns the process exit status: 0 success, 1 failure (the
 * command printed why), 2 usage error.
 */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

#include <stdbool.h>

struct agent_cmd {
    const char *name;
    const char *summary; /* one line for `shoal help` */
    const char *usage;   /* full text for `shoal CMD --help` */
    int (*run)(int argc, char **argv);
};

#define AGENT_EXIT_OK    0
#define AGENT_EXIT_FAIL  1
#define AGENT_EXIT_USAGE 2

/* Prints "shoal CMD: message" and a pointer to --help on stderr; returns 2. */
int agent_usage_error(const struct agent_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usage error for what getopt_long returned that no option case took,
 * with an optstring starting ':': ':' (the option at argv[optind - 1] has
 * no value) or '?' (unknown option). Returns 2. */
int agent_option_error(const struct agent_cmd *cmd, int c, char **argv);

/* Looks a command up by name; NULL if unknown. */
const struct agent_cmd *agent_cmd_find(const char *name);

/* The model directory a command uses when --model is not given: $SHOAL_MODEL
 * if set, else the repository's demo model. */
const char *agent_default_model(void);

/* Command entry points (one file each, agent/cmd_<name>.c). */
int agent_cmd_version(int argc, char **argv);
int agent_cmd_agent(int argc, char **argv);
extern const char agent_agent_usage[];
int agent_cmd_replay(int argc, char **argv);
extern const char agent_replay_usage[];
int agent_cmd_logits(int argc, char **argv);
int agent_cmd_tokenize(int argc, char **argv);
int agent_cmd_detokenize(int argc, char **argv);
int agent_cmd_run(int argc, char **argv);
extern const char agent_run_usage[];

/* Loads DIR/tokenizer.json into *tok (free with eng_tokenizer_free); on
 * failure prints "shoal CMD: why" and returns AGENT_EXIT_FAIL. */
struct eng_tokenizer;
int agent_load_tokenizer(const char *cmd, const char *dir, struct eng_tokenizer **tok);
/* The options tokenize and detokenize share in form (cmd_tokenize.c):
 * [--model DIR] --VALUE_OPT V [--FLAG_OPT], nothing else. Returns
 * AGENT_EXIT_OK with out filled, or the usage error (printed). */
struct agent_tok_args {
    const char *model; /* agent_default_model() without --model */
    const char *value; /* the required option's value (borrowed from argv) */
    bool flag;
};
int agent_tok_args_parse(const char *cmd,
                         const char *value_opt,
                         const char *flag_opt,
                         int argc,
                         char **argv,
                         struct agent_tok_args *out);
/* Flushes stdout; on failure prints "shoal CMD: writing the output failed"
 * and returns AGENT_EXIT_FAIL. */
int agent_tok_flush(const char *cmd);
int agent_cmd_keygen(int argc, char **argv);
int agent_cmd_runner(int argc, char **argv);
extern const char agent_runner_usage[];
int agent_cmd_template(int argc, char **argv);
int agent_cmd_status(int argc, char **argv);
extern const char agent_status_usage[];
int agent_cmd_quantize(int argc, char **argv);
int agent_cmd_bench(int argc, char **argv);

#endif
