/* engine/internal.h: what the model files of engine/ share: dtypes, the
 * weight matrix view and its per-dtype kernels, the safetensors reader, the
 * config parser, the model struct and the parallel linear layer. Only engine/
 * and its tests include this; other modules use engine/model.h.
 */
#ifndef ENG_INTERNAL_H
#define ENG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/file.h"
#include "engine/model.h"

/* ---- dtypes. Every dtype the safetensors format defines, so that headers
 * can be validated (sizes) even for tensors we never compute with. Values
 * are internal (never stored): append freely. */
enum eng_dtype {
    ENG_DT_F32 = 0,
    ENG_DT_F16,
    ENG_DT_BF16,
    ENG_DT_F64,
    ENG_DT_I64,
    ENG_DT_I32,
    ENG_DT_I16,
    ENG_DT_I8,
    ENG_DT_U64,
    ENG_DT_U32,
    ENG_DT_U16,
    ENG_DT_U8,
    ENG_DT_BOOL,
    ENG_DT_F8_E4M3,
    ENG_DT_F8_E5M2,
    ENG_DT_COUNT
};

struct eng_dtype_info {
    const char *st_name; /* as spelled in safetensors headers ("BF16") */
    const char *name;    /* short lower-case name ("bf16") */
    size_t size;         /* bytes per element */
};

/* Never NULL for dt < ENG_DT_COUNT. */
const struct eng_dtype_info *eng_dtype_info(enum eng_dtype dt);
/* Looks up a safetensors dtype name; false if unknown. */
bool eng_dtype_from_st(const char *st_name, enum eng_dtype *out);

/* ---- weight matrices. A view of a weight as stored in the mmapped file:
 * row r of `rows` starts at data + r * row_stride bytes and holds `cols`
 * elements of dtype. Kernels reach the weights only through this view and
 * the per-dtype table below, so a new storage format (quantized blocks with
 * their scales) adds fields here and a table entry, not a new forward(). */
struct eng_mat {
    enum eng_dtype dtype;
    int64_t rows;
    int64_t cols;
    size_t row_stride; /* bytes from one row to the next */
    const void *data;  /* borrowed: the mmap */
};

struct eng_mat_ops {
    /* y[r] = dot(row r of w, x) for r in [r0, r1); x has w->cols floats. */
    void (*dot_rows)(const struct eng_mat *w, const float *x, float *y, int64_t r0, int64_t r1);
    /* dst (r1 - r0, cols) = rows [r0, r1) of w converted to f32. */
    void (*rows_to_f32)(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst);
};

/* The kernels for a dtype, or NULL when we cannot compute with it. */
const struct eng_mat_ops *eng_mat_ops(enum eng_dtype dt);

/* Converts n elements of a dtype with kernels to f32 (vectors: norms, biases). */
void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n);

/* ---- small kernels on f32 activations (kernels.c) */
void eng_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void eng_softmax(float *x, int n);
void eng_swiglu(float *gate, const float *up, size_t n); /* gate = silu(gate) * up */
void eng_add(float *y, const float *x, size_t n);        /* y += x */
float eng_dot(const float *a, const float *b, int n);    /* vectorized a . b */
/* Rotates each of n_heads heads of head_dim in place, HF rotate_half style:
 * element i pairs with i + head_dim/2, by angle with cos[i], sin[i]. */
void eng_rope(float *v, int n_heads, int head_dim, const float *cos, const float *sin);

/* ---- safetensors (safetensors.c) */
#define ENG_ST_MAX_DIMS   8
#define ENG_ST_MAX_HEADER (100u << 20) /* bytes of header JSON, as the Rust reader */
#define ENG_ST_MAX_SHARDS 4096
#define ENG_ST_MAX_INDEX  (64u << 20) /* bytes of model.safetensors.index.json */

struct eng_tensor {
    char *name; /* owned by the eng_st */
    enum eng_dtype dtype;
    int n_dims;
    int64_t shape[ENG_ST_MAX_DIMS];
    uint64_t n_elems;
    const void *data; /* borrowed: inside the file's mmap */
    uint64_t nbytes;
    int file; /* index into eng_st.files */
};

struct eng_st_file {
    char *path; /* owned */
    struct sh_map map;
};

/* A model's tensors, from one file or from shards named by an index. */
struct eng_st {
    struct eng_st_file *files; /* (n_files) */
    int n_files;
    struct eng_tensor *tensors; /* (n_tensors), sorted by name */
    size_t n_tensors;
};

/* Validates one safetensors file image of size bytes (pure: no I/O) and
 * appends its tensors to *tensors, *n (realloc'd; names are returned, the
 * caller frees them with the array). `what` names the file in errors.
 * Errors: SH_EMALFORMED (header length, JSON, shape, offsets, overlaps,
 * alignment; message names file and tensor), SH_EUNSUPPORTED (a dtype we
 * don't know), SH_ENOMEM. On error *tensors and *n are unchanged. */
int eng_st_parse(const void *data,
                 size_t size,
                 const char *what,
                 int file,
                 struct eng_tensor **tensors,
                 size_t *n,
                 struct sh_err *err);

/* Maps dir/model.safetensors, or the shards that dir/model.safetensors.index.json
 * names (every tensor of the index must be in its shard), and validates
 * them. st is filled (caller's storage); release with eng_st_close.
 * Errors: SH_ENOTFOUND (no weights, a missing shard or tensor), SH_EMALFORMED,
 * SH_EUNSUPPORTED, SH_EIO, SH_ENOMEM. */
int eng_st_open(const char *dir, struct eng_st *st, struct sh_err *err);
void eng_st_close(struct eng_st *st);
/* The tensor of that name, or NULL. Borrowed while st is open. */
const struct eng_tensor *eng_st_find(const struct eng_st *st, const char *name);
/* Path of the file holding t (for messages). */
const char *eng_st_file_of(const struct eng_st *st, const struct eng_tensor *t);

/* ---- config (config.c) */

/* Fills c and g from parsed config.json and generation_config.json (gen may
 * be NULL). Pure. Errors: SH_EMALFORMED (a field of the wrong type or range,
 * named), SH_EUNSUPPORTED (an architecture or option we do not run, the key
 * named). */
int eng_config_parse(const cJSON *config,
                     const cJSON *gen,
                     struct eng_config *c,
                     struct eng_gen_defaults *g,
                     struct sh_err *err);
/* Reads dir/config.json and, when present, dir/generation_config.json. */
int eng_config_load(const char *dir,
                    struct eng_config *c,
                    struct eng_gen_defaults *g,
                    struct sh_err *err);

/* ---- the model (model.c) */
struct eng_expert {
    struct eng_mat gate; /* (moe_hidden_dim, dim) */
    struct eng_mat up;   /* (moe_hidden_dim, dim) */
    struct eng_mat down; /* (dim, moe_hidden_dim) */
};

struct eng_layer {
    const float *attn_norm; /* (dim) input_layernorm */
    struct eng_mat wq;      /* (n_heads * head_dim, dim) */
    struct eng_mat wk;      /* (n_kv_heads * head_dim, dim) */
    struct eng_mat wv;      /* (n_kv_heads * head_dim, dim) */
    struct eng_mat wo;      /* (dim, n_heads * head_dim) */
    const float *bq;        /* (n_heads * head_dim) or NULL */
    const float *bk;        /* (n_kv_heads * head_dim) or NULL */
    const float *bv;        /* (n_kv_heads * head_dim) or NULL */
    const float *bo;        /* (dim) or NULL */
    const float *q_norm;    /* (head_dim) or NULL (qwen3) */
    const float *k_norm;    /* (head_dim) or NULL (qwen3) */
    const float *ffn_norm;  /* (dim) post_attention_layernorm */
    /* dense MLP (n_experts == 0) */
    struct eng_mat w_gate; /* (hidden_dim, dim) */
    struct eng_mat w_up;   /* (hidden_dim, dim) */
    struct eng_mat w_down; /* (dim, hidden_dim) */
    /* mixture of experts (n_experts > 0) */
    struct eng_mat router;      /* (n_experts, dim) mlp.gate */
    struct eng_expert *experts; /* (n_experts), into eng_model.experts */
};

struct eng_model {
    struct eng_config cfg;
    struct eng_gen_defaults gen;
    struct eng_st st;           /* the mmapped files */
    struct eng_mat embed;       /* (vocab_size, dim) */
    struct eng_mat lm_head;     /* (vocab_size, dim); the embedding when tied */
    const float *final_norm;    /* (dim) */
    struct eng_layer *layers;   /* (n_layers) */
    struct eng_expert *experts; /* (n_layers * n_experts) or NULL */
    float *vecs;                /* norms and biases converted to f32; owns them */
    float *rope_inv_freq;       /* (head_dim / 2), scaled (llama3) */
    uint64_t weight_bytes;
    uint64_t n_params;
    const char *dtype_name;
};

/* Computes the RoPE inverse frequencies for c (head_dim / 2 floats), as
 * transformers does in float32, with llama3 scaling when configured. */
void eng_rope_inv_freq(const struct eng_config *c, float *out);

/* ---- linear layers over the pool (matmul.c) */

/* One output of a linear layer: y (n, w->rows) with row stride ldy floats. */
struct eng_linear {
    const struct eng_mat *w;
    float *y;
    size_t ldy;
};

/* Scratch for the prompt path: each pool thread converts weight tiles into
 * its own bounded buffer. */
struct eng_gemm_scratch {
    float *buf;        /* (n_threads, per_thread) */
    size_t per_thread; /* floats */
};

/* Floats of scratch per thread for matrices of at most max_cols columns. */
size_t eng_gemm_scratch_floats(int64_t max_cols);

/* y_j = x w_j^T for each of n_out outputs sharing the input x (n, cols) with
 * row stride ldx. n == 1 runs dot products (decode); n > 1 runs OpenBLAS
 * SGEMM on weight tiles converted to f32 in scratch (prompt). Rows are
 * split in contiguous ranges over the pool's threads. */
void eng_linear_run(struct eng_pool *pool,
                    const struct eng_gemm_scratch *scratch,
                    const struct eng_linear *out,
                    int n_out,
                    const float *x,
                    size_t ldx,
                    int n);

#endif
