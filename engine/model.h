/* engine/model.h: loading a Hugging Face model folder and running the
 * transformer forward pass on the CPU.
 *
 * Three objects, as in llama2.c: the config (hyperparameters, never changes),
 * the model (config + const weight views into its own copy of the
 * safetensors' matrices, shared read-only by every sequence and thread) and
 * a context (one sequence's KV cache and activations). A thread pool is
 * passed in so several contexts can share the machine's cores.
 *
 * A generation loop:
 *     eng_model_load(dir, &m, &err);
 *     eng_pool_new(0, &pool, &err);                      0: one thread per core
 *     eng_ctx_new(m, pool, n_ctx, &ctx, &err);
 *     eng_forward(ctx, prompt, n, false, logits, &err);  prefill
 *     loop: tok = sample(logits); eng_forward(ctx, &tok, 1, false, logits, &err);
 *     eng_ctx_truncate(ctx, keep) reuses a prefix; then eng_ctx_free,
 *     eng_pool_free, eng_model_free.
 *
 * Threads: a model is immutable once loaded and may be shared by any number
 * of contexts and threads. A pool runs one job at a time, so contexts that
 * share a pool must call eng_forward one after another (one driver thread).
 */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum eng_family {
    ENG_FAMILY_LLAMA = 0,
    ENG_FAMILY_MISTRAL = 1,
    ENG_FAMILY_QWEN2 = 2,
    ENG_FAMILY_QWEN3 = 3,
    ENG_FAMILY_QWEN3_MOE = 4,
};

enum eng_rope_type {
    ENG_ROPE_DEFAULT = 0,
    ENG_ROPE_LLAMA3 = 1,
};

#define ENG_MAX_EOS 8

struct eng_config {
    enum eng_family family;
    int n_layers;   /* num_hidden_layers */
    int dim;        /* hidden_size */
    int n_heads;    /* num_attention_heads */
    int n_kv_heads; /* num_key_value_heads (GQA) */
    int head_dim;   /* head_dim, or dim / n_heads when absent */
    int hidden_dim; /* intermediate_size */
    int vocab_size;
    int max_pos;    /* max_position_embeddings */
    float norm_eps; /* rms_norm_eps */
    float rope_theta;
    enum eng_rope_type rope_type;
    float rope_factor;           /* llama3 scaling */
    float rope_low_freq_factor;  /* llama3 scaling */
    float rope_high_freq_factor; /* llama3 scaling */
    int rope_orig_max_pos;       /* llama3 original_max_position_embeddings */
    bool tie_embeddings;
    bool attn_bias;      /* q/k/v biases (qwen2; llama/qwen3 attention_bias) */
    bool attn_out_bias;  /* o_proj bias (llama/qwen3 attention_bias; never qwen2) */
    bool qk_norm;        /* per-head RMSNorm on q and k before RoPE (qwen3) */
    int sliding_window;  /* 0 = full attention; else q attends keys k with q-w < k <= q */
    int swa_first_layer; /* layers >= this use sliding_window (qwen2/3 max_window_layers) */
    /* mixture of experts (qwen3-moe); n_experts == 0 for dense models */
    int n_experts;
    int n_experts_per_tok;
    int moe_hidden_dim;
    bool norm_topk_prob;
    /* MLX affine quantization ("quantization" in config.json); 0 when the
     * weights are floats. Modules may override it (see the engine). */
    int quant_bits;       /* 4 or 8 */
    int quant_group_size; /* 32, 64 or 128 */
    /* from config.json / generation_config.json */
    int32_t bos_id;               /* -1 if none */
    int32_t eos_ids[ENG_MAX_EOS]; /* generation_config eos_token_id (or config's) */
    int n_eos;
};

/* Sampling defaults from generation_config.json, when present. */
struct eng_gen_defaults {
    bool present;
    bool do_sample;
    float temperature;        /* 1 if absent */
    float top_p;              /* 1 if absent */
    int top_k;                /* 0 if absent */
    float repetition_penalty; /* 1 if absent */
};

struct eng_model;
struct eng_pool;

/* Reads config.json (both generations: torch_dtype/rope_theta/rope_scaling
 * and dtype/rope_parameters), generation_config.json when present, and the
 * safetensors (single file or sharded with model.safetensors.index.json),
 * validating every header, offset, dtype and shape before any weight is
 * trusted, then copies the weight matrices into anonymous memory of the
 * model's own (huge pages, the kernels' layout; on one thread per core), so
 * the model holds about its weights' size in RAM. *out is returned; free
 * with eng_model_free.
 * Errors: SH_ENOTFOUND (a missing file or tensor), SH_EMALFORMED (bad JSON,
 * header, offsets, overlaps, shapes; the message names file and tensor),
 * SH_EUNSUPPORTED (an architecture, dtype or option we do not run), SH_EIO,
 * SH_ENOMEM. */
int eng_model_load(const char *dir, struct eng_model **out, struct sh_err *err);
void eng_model_free(struct eng_model *m);

/* Borrowed views, valid while m lives. */
const struct eng_config *eng_model_config(const struct eng_model *m);
const struct eng_gen_defaults *eng_model_gen_defaults(const struct eng_model *m);

/* Bytes of weights the model maps, and the number of parameters. */
uint64_t eng_model_weight_bytes(const struct eng_model *m);
uint64_t eng_model_n_params(const struct eng_model *m);
/* Bytes of weights one decode step reads (each matrix once, one embedding
 * row, norms; for a mixture of experts the selected experts' share): the
 * divisor of the memory-bandwidth limit on tokens/s. */
uint64_t eng_model_decode_bytes(const struct eng_model *m);
/* A short name of the dominant weight dtype ("bf16", "f16", "f32", "q4",
 * "q8"). */
const char *eng_model_dtype_name(const struct eng_model *m);

/* Which weight kernels run: "avx512" (AVX2's, with AVX-512 F/BW/VL and
 * VNNI in the quantized and prompt products), "avx2" (AVX2+FMA+F16C) or
 * "scalar": the best this CPU runs, or the one eng_kernels_select chose. */
const char *eng_kernels_name(void);
/* Caps the kernels at name ("scalar", "avx2" or "avx512"; NULL or ""
 * changes nothing), for comparing them, or for avoiding a CPU's AVX-512.
 * Call it once, before any model is loaded and before threads start: the
 * choice is process-wide, and a model's weights are laid out at load for
 * the kernels then chosen. Errors (nothing changes): SH_EINVAL for an
 * unknown name, or kernels this CPU (or this build) cannot run. */
int eng_kernels_select(const char *name, struct sh_err *err);

/* ---- MLX affine quantization of a float model (`shoal quantize`) */

struct eng_quantize_opts {
    int bits;          /* 4 or 8 */
    int group_size;    /* 32, 64 or 128 */
    const char *dtype; /* scales, biases and the tensors left in float: "bf16",
                        * "f16" or "f32" (weights are rounded to it first, as
                        * mlx_lm.convert --dtype does); NULL: the model's own */
};

/* Writes to out_dir (which must not exist) the model of src_dir quantized
 * as mlx_lm.convert -q does: the same files, tensors, packing, rounding and
 * config keys, so MLX and shoal both load it. Nothing is left behind on
 * error. Errors: SH_EINVAL (options, an already quantized model), SH_EEXIST,
 * SH_EUNSUPPORTED (a tensor dtype or name it cannot write), the errors of
 * eng_model_load's readers, SH_EIO, SH_ENOMEM. */
int eng_quantize(const char *src_dir,
                 const char *out_dir,
                 const struct eng_quantize_opts *opts,
                 struct sh_err *err);

/* ---- thread pool: persistent workers with a barrier-style dispatch. */

/* n_threads <= 0 means the number of physical cores. Errors: SH_EINVAL
 * (more than 512 threads), SH_ENOMEM, SH_EIO (thread creation). */
int eng_pool_new(int n_threads, struct eng_pool **out, struct sh_err *err);
void eng_pool_free(struct eng_pool *pool);
int eng_pool_size(const struct eng_pool *pool);
/* Runs fn(arg, i, n) for i in [0, n) on the pool's threads (the caller is
 * thread 0) and returns when all have finished. Not reentrant, and one
 * caller at a time. Idle workers spin briefly, then sleep on a futex. */
void eng_pool_run(struct eng_pool *pool, void (*fn)(void *arg, int i, int n), void *arg);
/* Number of physical cores (falls back to online CPUs). */
int eng_physical_cores(void);

/* ---- one sequence */
struct eng_ctx;

/* How the KV cache stores keys and values. F16 halves the cache's memory
 * and the bytes attention reads per token; values are rounded to nearest
 * even (relative error <= 2^-11) and computed with in f32. */
enum eng_kv_type {
    ENG_KV_F32 = 0,
    ENG_KV_F16 = 1,
};

/* "f32" or "f16" -> *out; false for anything else. */
bool eng_kv_type_parse(const char *s, enum eng_kv_type *out);
const char *eng_kv_type_name(enum eng_kv_type t);

/* "16" or "8" -> *out (eng_ctx_opts.act_bits); false for anything else. */
bool eng_act_bits_parse(const char *s, int *out);

struct eng_ctx_opts {
    int n_ctx;                /* positions; <= 0: the model's max_pos */
    enum eng_kv_type kv_type; /* ENG_KV_F32 (0) unless asked */
    /* Width of the activation codes that 4-bit weights multiply in decode:
     * 0 or 16 (default; within 2^-16 of each group's largest value), or 8
     * (2^-8, as llama.cpp rounds its activations: faster where decode is
     * bound by the kernel's arithmetic, and lossy: logits moved by up to
     * 0.13 on the demo model quantized to 4 bits, 0.54 on the tiny random
     * test models). Prompts (but for the final layer of their last
     * token, which runs as decode does) and 8-bit weights always use 16. */
    int act_bits;
    /* Prompt tokens per forward chunk (the activations' buffers hold one
     * chunk): 0 for the default, 128; at most 4096. Results do not depend
     * on it beyond the order of float additions; tests make it small to
     * cross chunk boundaries. */
    int chunk;
};

/* A context for up to n_ctx positions (<= 0: the model's max_pos). The model
 * and pool are borrowed for the context's lifetime. The f32 KV cache takes
 * 2 x n_layers x n_ctx x n_kv_heads x head_dim x 4 bytes, allocated up front
 * but touched only as positions fill. Sets OpenBLAS to one thread per call
 * (process-wide): prompt SGEMMs run one per pool thread. Errors: SH_EINVAL
 * (n_ctx larger than max_pos; with options, also a kv_type, act_bits or chunk
 * outside its range), SH_ENOMEM. */
int eng_ctx_new(const struct eng_model *m,
                struct eng_pool *pool,
                int n_ctx,
                struct eng_ctx **out,
                struct sh_err *err);
/* The same with options (opts borrowed for the call; 2 bytes per cached
 * element with ENG_KV_F16). */
int eng_ctx_new_ex(const struct eng_model *m,
                   struct eng_pool *pool,
                   const struct eng_ctx_opts *opts,
                   struct eng_ctx **out,
                   struct sh_err *err);
void eng_ctx_free(struct eng_ctx *ctx);

/* Positions already in the KV cache, and the capacity. */
int eng_ctx_pos(const struct eng_ctx *ctx);
int eng_ctx_capacity(const struct eng_ctx *ctx);
/* Forgets positions >= pos (pos <= current position), e.g. to reuse a prompt
 * prefix. */
void eng_ctx_truncate(struct eng_ctx *ctx, int pos);

/* Appends n tokens at the current position and computes their logits.
 * all_logits: logits (borrowed for the call) receives n x vocab floats (row i
 * = prediction after token i); otherwise vocab floats for the last token
 * only. logits may be NULL when the caller only fills the cache. Allocates
 * nothing: long prompts run in chunks through buffers made by eng_ctx_new.
 * Errors: SH_EINVAL (n == 0), SH_ERANGE (a token id outside the vocabulary,
 * or the sequence would pass the context's capacity; nothing is appended
 * then). */
int eng_forward(struct eng_ctx *ctx,
                const int32_t *tokens,
                size_t n,
                bool all_logits,
                float *logits,
                struct sh_err *err);

#endif
