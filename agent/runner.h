/* agent/runner.h: the model runner, `shoal runner`: the child process
 * `shoal agent` starts per model (agent/serve_runner.c), which loads the
 * model, tokenizer and chat template and answers GEN frames
 * (agent/runner_proto.h) on the socket it inherited. Internal to agent/.
 *
 * Rank 0 of a model owns everything between the HTTP layer's validated
 * request and text deltas: chat template rendering, tokenizing, the context
 * check, sampling parameters, stop ids and strings, logprobs, the output
 * parser (content / reasoning / tool calls) and exact token counts. The
 * agent only moves frames.
 *
 * Two parts:
 *   runner_req.c  the model (runner_model_load) and one request (a job):
 *                 GEN JSON -> prompt ids and a generator; each job step
 *                 appends DELTA / DONE / ERROR frames to an output buffer.
 *   runner.c      the process: flags, the socket, slots (one eng_ctx each,
 *                 sharing one thread pool) and the loop that interleaves the
 *                 active jobs one step each, round-robin.
 *
 * The GEN payload (JSON, written by agent/serve_backend.c):
 *   {"kind": "chat"|"completion",
 *    "messages": [...] (chat: api.h's normalized messages),
 *    "prompt": "..." (completion),
 *    "tools": [...] (optional), "tool_choice": "none"|"auto"|"required"|"function",
 *    "tool_name": "..." (function), "parallel_tool_calls": bool,
 *    "sampling": {"temperature", "top_p", "top_k", "min_p", "repetition_penalty",
 *                 "presence_penalty", "frequency_penalty": numbers, "seed": "decimal"}
 *                (each optional: absent = the model's generation_config),
 *    "max_tokens": N (-1 = until a stop or the context is full),
 *    "stop": ["..."], "top_logprobs": -1 (none) | 0..20,
 *    "format": "text"|"json", "think": "unset"|"off"|"on"}
 *
 * TEST AID (documented in README "API"): SHOAL_TEST_FORCE_OUTPUT=TEXT makes
 * every generation of this runner emit the tokens of TEXT in order instead
 * of sampled ones (eng_gen_force); SHOAL_TEST_FORCE_RULES='[{"match": S,
 * "output": TEXT}, ...]' does so only for prompts containing S (the first
 * rule that matches wins; no "match" matches every prompt). After the forced
 * tokens, sampling goes on as usual unless one of them was a stop token.
 * Everything after the choice of token (detokenizing, stop strings, the
 * output parser, the API's formatting) is the real path.
 */
#ifndef AGENT_RUNNER_H
#define AGENT_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "engine/chat_parse.h"

struct eng_model;
struct eng_tokenizer;
struct eng_chat_template;
struct eng_ctx;

#define RUNNER_MAX_STOP_IDS 8

struct runner_force_rule {
    char *match; /* NULL: every prompt */
    int32_t *ids;
    size_t n;
};

/* A loaded model and what every request of it shares. Immutable after
 * runner_model_load. */
struct runner_model {
    struct eng_model *model;
    struct eng_tokenizer *tok;
    struct eng_chat_template *tmpl;             /* NULL: no chat template (chat refused) */
    int32_t chat_stop_ids[RUNNER_MAX_STOP_IDS]; /* end-of-turn markers + eos_token */
    size_t n_chat_stop_ids;
    int32_t cfg_eos;                  /* tokenizer_config.json eos_token's id, -1 if none */
    enum eng_chat_format tool_format; /* of the template with tools */
    bool thinking;                    /* the template knows <think> */
    struct runner_force_rule *rules;  /* test aid; n_rules of them */
    size_t n_rules;
};

/* Loads model, tokenizer, chat template (optional) from dir and the test
 * aid's environment variables. Errors: those of the engine's loaders,
 * wrapped with the file; SH_EINVAL for a bad SHOAL_TEST_FORCE_RULES. */
int runner_model_load(const char *dir, struct runner_model *rm, struct sh_err *err);
void runner_model_close(struct runner_model *rm);

/* The READY payload: {"family","dtype","params","bytes","context",
 * "max_pos","slots","embedding","layers","heads","kv_heads","vocab",
 * "template","tools","thinking","defaults":{...}|null,"test_aid":bool}.
 * Returned (free with free()), NULL on ENOMEM. */
char *runner_ready_json(const struct runner_model *rm, int n_ctx, int slots);

struct runner_job;

/* Builds a job for request id from a GEN payload (json[0..len), borrowed
 * for the call) on ctx (borrowed for the job's life): validates the JSON,
 * renders the chat template, tokenizes, checks the prompt fits ctx, makes
 * the generator. recv_ns: when the GEN frame arrived. *out is returned.
 * Errors (sent to the agent as an ERROR frame): SH_EMALFORMED (bad JSON),
 * SH_ERANGE (the prompt does not fit the context), SH_EINVAL (a parameter,
 * a template error), SH_EUNSUPPORTED (tools or thinking the model lacks,
 * json_schema), SH_ENOMEM. */
int runner_job_new(const struct runner_model *rm,
                   struct eng_ctx *ctx,
                   uint32_t id,
                   const char *json,
                   size_t len,
                   uint64_t recv_ns,
                   struct runner_job **out,
                   struct sh_err *err);

/* One unit of work: the first call evaluates the prompt and produces the
 * first token, every later call one token. Frames (DELTA, and at the end
 * DONE or ERROR) are appended to out; *ended is set once the final frame is
 * there (then only runner_job_free is allowed). Errors: SH_ENOMEM /
 * SH_ETOOBIG when a frame could not be built: the job is broken and the
 * runner gives up (the agent reports its requests failed). */
int runner_job_step(struct runner_job *j, struct sh_strbuf *out, bool *ended);

uint32_t runner_job_id(const struct runner_job *j);
void runner_job_free(struct runner_job *j);

#endif
