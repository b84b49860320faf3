/* tests/engine/fuzz_jinja.c: libFuzzer target: any bytes as a template,
 * compiled and rendered over a small chat context under tight limits. Must
 * never crash, leak or hit UB. Not part of the suite; build with clang:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *     -I/usr/include/cjson tests/engine/fuzz_jinja.c engine/jinja_*.c \
 *     common/err.c common/util.c -lcjson -lm -o fuzz_jinja
 *   ./fuzz_jinja -max_total_time=300 CORPUS_DIR */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char ctx_json[] =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", "
        "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"<think>x</think>ok\", "
        "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
        "\"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", \"content\": \"r\"}], \"tools\": "
        "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"add_generation_prompt\": "
        "true, \"bos_token\": \"<s>\", \"n\": 3, \"f\": 2.5, \"lst\": [3, 1, 2]}";
    struct eng_jinja_limits lim = {
        .max_output = 1u << 16, .max_memory = 8u << 20, .max_depth = 200, .max_steps = 20000};
    struct eng_jinja *t = NULL;
    struct sh_err err;
    cJSON *ctx = cJSON_Parse(ctx_json);
    char *out = NULL;
    size_t len;
    if (eng_jinja_compile((const char *)data, size, &t, &err) == 0) {
        if (eng_jinja_render(t, ctx, NULL, &lim, &out, &len, &err) == 0)
            free(out);
        eng_jinja_free(t);
    }
    cJSON_Delete(ctx);
    return 0;
}
