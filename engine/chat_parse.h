/* engine/chat_parse.h: splits a model's generated text into content,
 * reasoning and tool calls, incrementally while tokens stream. Pure: no I/O.
 *
 * Formats (picked from the chat template's text, or explicitly):
 *   HERMES      Qwen2.5/Qwen3: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
 *   LLAMA31     Llama 3.1: a message that is one JSON object {"name": ...,
 *               "parameters": {...}} (or "arguments"), or <|python_tag|> then
 *               such JSON or a builtin call name.call(key="value", ...)
 *   DEEPSEEK_V3 <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
 *               \n```json\nARGS\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
 *   PLAIN       no tool calls
 * Reasoning (any format): <think>...</think>, Qwen3/DeepSeek-R1 style; with
 * starts_in_reasoning the text begins inside the block (the prompt itself
 * ended with <think>). Newlines right after <think> and </think>, right
 * before </think>, around tool-call markers and between calls are dropped,
 * as the templates add them.
 *
 * Feed the text decoded with special tokens kept (the markers above are
 * special tokens for some models), minus the end-of-turn token.
 * Malformed tool-call JSON gives a TOOL_ERROR event with the raw text; it is
 * never fatal. Events carry views valid only during the callback.
 */
#ifndef ENG_CHAT_PARSE_H
#define ENG_CHAT_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

enum eng_chat_format {
    ENG_CHAT_FMT_PLAIN,
    ENG_CHAT_FMT_HERMES,
    ENG_CHAT_FMT_LLAMA31,
    ENG_CHAT_FMT_DEEPSEEK_V3,
};

struct eng_chat_parse_opts {
    enum eng_chat_format format;
    bool tools;               /* tools were offered: parse tool calls */
    bool reasoning;           /* recognize <think>...</think> */
    bool starts_in_reasoning; /* the prompt ended inside <think> */
};

/* Options for a template's output: format from the markers its text uses,
 * reasoning when it mentions <think>, starts_in_reasoning when the rendered
 * prompt (may be NULL) ends with an open <think>. tools as given. */
void eng_chat_parse_detect(const char *template_src,
                           const char *prompt,
                           bool tools,
                           struct eng_chat_parse_opts *out);

enum eng_chat_event_type {
    ENG_CHAT_EV_CONTENT,    /* text: a content delta */
    ENG_CHAT_EV_REASONING,  /* text: a reasoning delta */
    ENG_CHAT_EV_TOOL_CALL,  /* name, arguments (a JSON object as text), id */
    ENG_CHAT_EV_TOOL_ERROR, /* text: the raw call, error: why it was not parsed, id */
};

struct eng_chat_event {
    enum eng_chat_event_type type;
    const char *text;
    size_t len;
    const char *name;      /* NUL-terminated */
    const char *arguments; /* NUL-terminated JSON text */
    const char *id;        /* "call_<n>", n counting calls and errors from 0 */
    const char *error;
};

/* Called for each event; a non-zero return stops the feed and is returned. */
typedef int (*eng_chat_event_fn)(void *arg, const struct eng_chat_event *ev);

struct eng_chat_parser;

/* Errors: SH_ENOMEM. */
int eng_chat_parser_new(const struct eng_chat_parse_opts *opts,
                        struct eng_chat_parser **out,
                        struct sh_err *err);
void eng_chat_parser_free(struct eng_chat_parser *p);

/* Feeds n bytes (any split, even inside a UTF-8 character or a marker).
 * Text that might start a marker is held back until it is decided.
 * Errors: SH_ETOOBIG (a tool call larger than ENG_CHAT_MAX_CALL), SH_ENOMEM,
 * or the callback's code. */
int eng_chat_parser_feed(struct eng_chat_parser *p,
                         const char *text,
                         size_t n,
                         eng_chat_event_fn fn,
                         void *arg,
                         struct sh_err *err);

/* End of generation: flushes held-back text, parses an unterminated call
 * (an error event if it is not complete JSON). Errors as for feed. */
int eng_chat_parser_finish(struct eng_chat_parser *p,
                           eng_chat_event_fn fn,
                           void *arg,
                           struct sh_err *err);

#define ENG_CHAT_MAX_CALL (4u << 20)

#endif
