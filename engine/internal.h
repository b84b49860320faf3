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
    /* MLX affine-quantized matrices (never a safetensors dtype: a U32 weight
     * with its scales and biases tensors becomes one of these). */
    ENG_DT_Q4,
    ENG_DT_Q8,
    ENG_DT_COUNT
};

struct eng_dtype_info {
    const char *st_name; /* as spelled in safetensors headers ("BF16"); NULL for Q4/Q8 */
    const char *name;    /* short lower-case name ("bf16") */
    size_t size;         /* bytes per element; 0 for Q4/Q8 (packed in U32 words) */
};

/* Never NULL for dt < ENG_DT_COUNT. */
const struct eng_dtype_info *eng_dtype_info(enum eng_dtype dt);
/* Looks up a safetensors dtype name; false if unknown. */
bool eng_dtype_from_st(const char *st_name, enum eng_dtype *out);

/* ---- weight matrices. A view of a weight matrix, bound to the mmapped
 * file and then pointed at the model's own copy (place_all in model.c):
 * row r of `rows` starts at data + r * row_stride bytes and holds `cols`
 * elements of dtype. Kernels reach the weights only through this view and
 * the per-dtype table below, so forward() never sees a storage format.
 *
 * Affine-quantized rows (ENG_DT_Q4, ENG_DT_Q8; MLX's layout, see quant.c):
 * data holds the codes packed in little-endian uint32 words (code k of a
 * word at bits [k*bits, (k+1)*bits), the first element in the low bits);
 * element c of row r is code * scale + bias with scale and bias of group
 * c / group_size, stored in sb_dtype at scales/biases + r * sb_stride. */
struct eng_mat {
    enum eng_dtype dtype;
    int64_t rows;
    int64_t cols;
    size_t row_stride; /* bytes from one row to the next */
    const void *data;  /* borrowed: eng_model.placed (the mmap while binding) */
    /* affine-quantized only */
    int group_size;          /* 32, 64 or 128; cols is a multiple of it */
    enum eng_dtype sb_dtype; /* F32, F16 or BF16 */
    const void *scales;      /* (rows, cols / group_size), borrowed */
    const void *biases;      /* (rows, cols / group_size), borrowed */
    size_t sb_stride;        /* bytes from one row of scales to the next */
    /* rows are in the AVX2 kernels' interleaved layout (repack, below),
     * not the file's; only that ISA's table may read them */
    bool interleaved;
    /* interleaved, with the batches of 8 groups running on across rows
     * (the matrix one sequence of rows * cols / group_size groups), for
     * rows whose group count is not a multiple of 8 (kern_avx2_q.c) */
    bool flat;
};

/* An f32 activation vector prepared for the kernels of a weight dtype
 * (layouts in kern_avx2.c and kern_avx2_q.c, math in kern_scalar.c):
 *  - BF16 (AVX2 only) multiplies x reordered to match its bf16 pairs;
 *  - Q4 and Q8 multiply the codes with 16-bit integer codes of x: per group
 *    g, x[i] ~= d[g] * X[i], X = rint(x / d), d = max|x| / 32639 (error at
 *    most d/2, 2^-16 of the group's largest element: 2^8 times finer than
 *    an 8-bit weight's own rounding), kept in t in element order and in q
 *    in the order the kernels of the ISA whose prep wrote it consume them; s[g] = d[g] * sum of the
 *    group's X (the biases' term).
 *  - bits 8 (Q4 only, asked for with eng_ctx_opts.act_bits): the same with
 *    d = max|x| / 127 and 8-bit codes in q, which the AVX2 kernel multiplies
 *    with vpmaddubsw at twice vpmaddwd's rate. Error at most d/2, 2^-8 of
 *    the group's largest element: llama.cpp's Q8_0 activations, lossy.
 */
struct eng_xq {
    int64_t cols;
    int group_size;
    enum eng_dtype dtype; /* the weights' dtype: Q4 or Q8 */
    int bits;             /* Q4, Q8: the codes' width, 16 or (Q4 only) 8 */
    const float *x;       /* BF16: a reordered copy of the input in t */
    int16_t *q;           /* Q4, Q8: (whole 8-group batches) codes, AVX2 order
                           * (bits 8: int8_t codes in the first half) */
    int32_t *t;           /* (whole 8-group batches) codes in element order */
    float *d;             /* Q4, Q8: (groups rounded up to 8; zero past the last) */
    float *s;             /* (groups rounded up to 8; zero past the last) */
    /* Q4, Q8 on AVX2: each group's codes as the 32-bit pairs its lane
     * multiplies (cols / 2), and for a flat matrix d and s per lane of q */
    uint32_t *pairs;
    float *dl, *sl;
};

/* Bytes an eng_xq for cols elements takes (header and arrays, as
 * eng_xq_init lays them out in one buffer; group_size 0 for float
 * weights). Arrays hold the elements of whole 8-group batches, zero-padded. */
size_t eng_xq_bytes(int64_t cols, int group_size);
/* Lays an eng_xq out in buf (eng_xq_bytes(cols, gs) bytes, 32-byte aligned)
 * and returns it, ready for a prep of codes of the given bits (16, or 8
 * for Q4 weights; anything else is taken as 16). */
struct eng_xq *eng_xq_init(void *buf, int64_t cols, int group_size, enum eng_dtype dt, int bits);

struct eng_mat_ops {
    /* Prepares the input x (w->cols floats) for dot_rows into xq, laid out
     * by eng_xq_init for w; NULL when dot_rows reads x as f32. */
    void (*prep)(const struct eng_mat *w, const float *x, struct eng_xq *xq);
    /* y[r] = dot(row r of w, x) for r in [r0, r1); xp is x (w->cols
     * floats), or the eng_xq prep made from it. */
    void (*dot_rows)(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1);
    /* dst (r1 - r0, cols) = rows [r0, r1) of w converted to f32. */
    void (*rows_to_f32)(const struct eng_mat *w, int64_t r0, int64_t r1, float *dst);
    /* NULL, or: the ISA reads w's rows in a layout of its own, rows *
     * row_stride bytes plus ENG_REPACK_PAD, written to dst by repack, which
     * points *out (a copy of *w) at it. Done once at load (model.c). */
    void (*repack)(const struct eng_mat *w, void *dst, struct eng_mat *out);
};

/* Bytes a repacked matrix may read past its last row (vector loads of a
 * row's short last batch). */
#define ENG_REPACK_PAD 64

/* Instruction sets with kernels of their own. */
enum eng_isa {
    ENG_ISA_SCALAR = 0, /* portable C: every CPU, and the tests' oracle */
    ENG_ISA_AVX2 = 1,   /* x86-64 with AVX2, FMA and F16C */
    /* AVX2's kernels with the Q4/Q8 decode products and the prompt
     * products' micro-kernels in AVX-512 (F, BW, VL) and VNNI; the same
     * layouts, and bit-identical results */
    ENG_ISA_AVX512 = 2,
};

/* The best ISA this CPU runs (checked at run time). */
enum eng_isa eng_isa_best(void);
const char *eng_isa_name(enum eng_isa isa);
/* The kernels for a dtype on the best ISA, or NULL when we cannot compute
 * with that dtype. */
const struct eng_mat_ops *eng_mat_ops(enum eng_dtype dt);
/* The kernels of one ISA (NULL when the dtype or the ISA is unavailable
 * here); for the tests, which compare every ISA with the scalar one. */
const struct eng_mat_ops *eng_mat_ops_isa(enum eng_dtype dt, enum eng_isa isa);
/* The per-ISA tables (kern_scalar.c, kern_avx2.c; avx512 only where
 * built with ENG_HAVE_AVX512): indexed by dtype,
 * entries with a NULL dot_rows are unsupported. */
extern const struct eng_mat_ops eng_kern_scalar[ENG_DT_COUNT];
extern const struct eng_mat_ops eng_kern_avx2[ENG_DT_COUNT];
extern const struct eng_mat_ops eng_kern_avx512[ENG_DT_COUNT];

/* Vector kernels of attention over the KV cache, whose elements are F32 or
 * F16 (see eng_kv_type). */
struct eng_kv_ops {
    /* sum_i a[i] * b[i] over n elements, b in the cache's dtype */
    float (*dot)(const float *a, const void *b, int n);
    /* y[i] += s * x[i], x in the cache's dtype */
    void (*axpy)(float *y, float s, const void *x, int n);
    /* dst (the cache's dtype) = src, rounded to nearest even */
    void (*store)(void *dst, const float *src, int n);
};

/* For ENG_DT_F32 or ENG_DT_F16 caches, on the best ISA (NULL otherwise). */
const struct eng_kv_ops *eng_kv_ops(enum eng_dtype dt);
const struct eng_kv_ops *eng_kv_ops_isa(enum eng_dtype dt, enum eng_isa isa);
extern const struct eng_kv_ops eng_kv_scalar[2]; /* [0] F32, [1] F16 */
extern const struct eng_kv_ops eng_kv_avx2[2];

/* Converts n elements of a dtype with kernels to f32 (vectors: norms, biases). */
void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n);

/* ---- small kernels on f32 activations (kernels.c) */
void eng_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void eng_softmax(float *x, int n);
void eng_swiglu(float *gate, const float *up, size_t n); /* gate = silu(gate) * up */
/* The same on one ISA: the scalar one with libm's expf (the oracle), the
 * AVX2 one with a vector e^x within 2 ulp of it (kern_avx2.c). */
void eng_swiglu_isa(enum eng_isa isa, float *gate, const float *up, size_t n);
void eng_swiglu_avx2(float *gate, const float *up, size_t n);
/* x[i] = e^(x[i] * scale - m) for i in [0, n) with kern_avx2.c's vector
 * e^x (within 2 ulp of libm's; flushed to e^-88.4 below that); returns
 * their sum. AVX2 only. */
float eng_exp_scaled_avx2(float *x, int n, float scale, float m);
void eng_add(float *y, const float *x, size_t n);     /* y += x */
float eng_dot(const float *a, const float *b, int n); /* vectorized a . b */
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

/* ---- MLX affine quantization (quant.c) */

/* A module's own quantization (config "quantization": {"<module>": ...}). */
struct eng_quant_over {
    char *module; /* owned; e.g. "model.layers.0.mlp.down_proj" */
    int bits;     /* 0: left in float */
    int group_size;
};

/* config.json's "quantization" (or an MLX "quantization_config"). */
struct eng_quant {
    int bits; /* 0: the model is not quantized */
    int group_size;
    struct eng_quant_over *over; /* (n_over), owned */
    int n_over;
};

/* Parses the quantization block of a config.json root into q (caller's
 * storage; release with eng_quant_free). No block: q->bits == 0.
 * Errors: SH_EMALFORMED, SH_EUNSUPPORTED (bits other than 4/8, group sizes
 * other than 32/64/128, a mode other than affine, a Hugging Face
 * quant_method), SH_ENOMEM. On error q is untouched. */
int eng_quant_parse(const cJSON *cfg, struct eng_quant *q, struct sh_err *err);
void eng_quant_free(struct eng_quant *q);
/* The override for a module path, or NULL. Borrowed from q. */
const struct eng_quant_over *eng_quant_find(const struct eng_quant *q, const char *module);

/* Quantizes one group of group_size floats as MLX does (float32 math):
 * codes[i] in [0, 2^bits), and the scale and bias already rounded to
 * sb_dtype (F32, F16 or BF16), the values a reader of the file will get. */
void eng_quant_group(const float *w,
                     int group_size,
                     int bits,
                     enum eng_dtype sb_dtype,
                     uint8_t *codes,
                     float *scale,
                     float *bias);
/* Packs n codes (n even) into n * bits / 8 bytes, MLX's order. */
void eng_quant_pack(const uint8_t *codes, int64_t n, int bits, uint8_t *out);

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
/* Reads dir/config.json and, when present, dir/generation_config.json; q
 * (may be NULL) receives the quantization block with its per-module
 * overrides (release with eng_quant_free). */
int eng_config_load(const char *dir,
                    struct eng_config *c,
                    struct eng_gen_defaults *g,
                    struct eng_quant *q,
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
    struct eng_quant quant;     /* config.json's quantization block */
    struct eng_mat embed;       /* (vocab_size, dim) */
    struct eng_mat lm_head;     /* (vocab_size, dim); the embedding when tied */
    const float *final_norm;    /* (dim) */
    struct eng_layer *layers;   /* (n_layers) */
    struct eng_expert *experts; /* (n_layers * n_experts) or NULL */
    float *vecs;                /* norms and biases converted to f32; owns them */
    void *placed;               /* the weight matrices, copied or repacked (mmap), or NULL */
    size_t placed_bytes;
    float *rope_inv_freq; /* (head_dim / 2), scaled (llama3) */
    uint64_t weight_bytes;
    uint64_t decode_bytes; /* read per decode step, see eng_model_decode_bytes */
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
    const float *x; /* this output's own input (n == 1 only), or NULL: the call's */
};

/* Scratch of the linear layers, made once per context: for the prompt
 * path each pool thread converts weight tiles into its own bounded buffer;
 * for decode the input is prepared once per call for each kind of weight
 * that wants it (Q4/Q8 at some group size), one slot per kind. */
#define ENG_PREP_SLOTS     6  /* kinds: {Q4, Q8} x group sizes {32, 64, 128} */
#define ENG_LINEAR_MAX_OUT 64 /* outputs of one eng_linear_run call */

struct eng_chunk_cursor;

struct eng_gemm_scratch {
    float *buf;        /* (n_threads, per_thread) */
    size_t per_thread; /* floats */
    float *xp;         /* prompt input packed for eng_gemm_avx2 (NULL: OpenBLAS path) */
    void *xq;          /* prompt input's codes for eng_gemm_q_avx2 (NULL with xp) */
    uint8_t *prep;     /* (n_prep, prep_bytes), 64-byte aligned */
    size_t prep_bytes; /* per slot */
    int n_prep;        /* slots: one per (input, kind of weight) of a call */
    int act_bits;      /* Q4 decode's codes (eng_xq.bits): 16, or 8 if asked */
    struct eng_chunk_cursor *cursors; /* (n_threads) the products' chunk cursors, matmul.c */
};

/* Allocates scratch for n_threads and matrices of at most max_cols columns,
 * prompts of at most max_tokens, with ENG_PREP_SLOTS + extra_inputs
 * preparation slots (extra_inputs: the most outputs with their own input in
 * one call). Errors: SH_ENOMEM. Release with eng_gemm_scratch_free (accepts
 * a zeroed struct). */
int eng_gemm_scratch_init(
    struct eng_gemm_scratch *s, int n_threads, int64_t max_cols, int max_tokens, int extra_inputs);

/* The prompt product on AVX2/FMA (gemm_avx2.c; only where ENG_HAVE_AVX2):
 * x (m, k) packed once by eng_gemm_pack_x into xp (eng_gemm_xp_floats(m, k)
 * floats), then y[t][r] for rows [r0, r1) of w, converted by ops into wbuf
 * (per thread, max(64 Ki, 12 (k + 16)) floats) a block at a time; y has row stride
 * ldy. isa picks the micro-kernel: AVX-512's (gemm_avx512.c) where it is
 * ENG_ISA_AVX512 and the CPU runs it, AVX2's otherwise; both give the same
 * bits. */
size_t eng_gemm_xp_floats(int m, int64_t k);
void eng_gemm_pack_x(const float *x, size_t ldx, int m, int64_t k, float *xp);
/* eng_gemm_pack_x's token blocks [b0, b1) of eng_gemm_x_blocks(m), as
 * eng_gemm_prep_q's: threads may pack disjoint ranges at once. */
int eng_gemm_x_blocks(int m);
void eng_gemm_pack_x_blocks(
    const float *x, size_t ldx, int m, int64_t k, float *xp, int b0, int b1);
void eng_gemm_avx2(const struct eng_mat *w,
                   const struct eng_mat_ops *ops,
                   int64_t r0,
                   int64_t r1,
                   const float *xp,
                   int m,
                   float *y,
                   size_t ldy,
                   float *wbuf,
                   enum eng_isa isa);
/* The prompt product of Q4/Q8 weights on AVX2, in integers (gemm_q_avx2.c;
 * only where ENG_HAVE_AVX2): the tokens x (m, k), row stride ldx, rounded
 * once per call to the 16-bit codes of decode (per token and group of gs,
 * as eng_mat_ops.prep): eng_gemm_xq_init lays xq out in buf
 * (eng_gemm_xq_bytes(m, k) bytes, 64-byte aligned), then eng_gemm_prep_q
 * fills token blocks [b0, b1) of eng_gemm_xq_blocks (threads may fill
 * disjoint ranges). Then eng_gemm_q_avx2 gives y[t][r] for rows [r0, r1)
 * of w (interleaved rows, group size gs), converted a block at a time into
 * wbuf (per thread, at least max(256 KiB, 28 k bytes)); y has row stride
 * ldy; isa as for eng_gemm_avx2. */
struct eng_gemm_xq {
    int m;
    int64_t k;
    int group_size;
    int16_t *q;   /* (token blocks, k / 2 pairs, 16 tokens, 2) */
    float *d, *s; /* (token blocks, groups, 16 tokens) */
};
size_t eng_gemm_xq_bytes(int m, int64_t k);
void eng_gemm_xq_init(void *buf, int m, int64_t k, int gs, struct eng_gemm_xq *xq);
int eng_gemm_xq_blocks(const struct eng_gemm_xq *xq);
void eng_gemm_prep_q(const float *x, size_t ldx, const struct eng_gemm_xq *xq, int b0, int b1);
void eng_gemm_q_avx2(const struct eng_mat *w,
                     int64_t r0,
                     int64_t r1,
                     const struct eng_gemm_xq *xq,
                     float *y,
                     size_t ldy,
                     void *wbuf,
                     enum eng_isa isa);
void eng_gemm_scratch_free(struct eng_gemm_scratch *s);

/* The first cached position a query at pos attends to under a sliding
 * window of `window` positions (0: none, every position from 0). */
static inline int eng_attn_first_key(int pos, int window)
{
    return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* Causal (optionally windowed) attention of n prompt tokens over one
 * layer's cache, as matrix products (attn_prompt.c; only where
 * ENG_HAVE_AVX2, and eng_gemm_avx2 may run). Everything is borrowed. The
 * cache already holds the n tokens' keys and values at positions p0.. */
struct eng_attn_prompt {
    const float *q; /* (n, q_stride): the tokens' queries after RoPE */
    size_t q_stride;
    int n, p0;
    int n_heads, n_kv_heads, head_dim;
    int window;                 /* sliding window in positions; 0: none */
    const uint8_t *key_cache;   /* this layer's position 0 */
    const uint8_t *value_cache; /* this layer's position 0 */
    size_t row;                 /* bytes per cached position */
    enum eng_dtype kv_dtype;    /* F32 or F16 */
    float *out;                 /* (n, out_stride): heads side by side, as q */
    size_t out_stride;
};
/* Floats of the per-thread buffer eng_attn_prompt_run needs. */
size_t eng_attn_prompt_floats(int group, int head_dim);
/* Independent items (token block, KV head); threads may run any disjoint
 * sets of them, each with its own buf (eng_attn_prompt_floats) and wbuf
 * (eng_gemm_avx2's: at least 64 Ki floats). */
long eng_attn_prompt_items(const struct eng_attn_prompt *a);
void eng_attn_prompt_run(const struct eng_attn_prompt *a, long item, float *buf, float *wbuf);

/* y_j = x w_j^T for each of n_out (<= ENG_LINEAR_MAX_OUT) outputs sharing
 * the input x (n, cols) with row stride ldx (or, for n == 1, each with its
 * own out[j].x). n == 1 runs the dtypes' dot products (decode; each input
 * prepared once per kind of weight); n > 1 (prompt) runs, on AVX2, the
 * integer product when every output is Q4/Q8 of one group size, else the
 * f32 product on converted weight rows, and elsewhere OpenBLAS SGEMM on
 * tiles converted to f32 in scratch. The rows of all outputs are
 * split in contiguous ranges over the pool's threads, evenly; the ranges
 * are runs of chunks, and a thread that finishes its own takes the others'
 * last chunks. scratch must have been made for at least the pool's
 * threads. */
void eng_linear_run(struct eng_pool *pool,
                    const struct eng_gemm_scratch *scratch,
                    const struct eng_linear *out,
                    int n_out,
                    const float *x,
                    size_t ldx,
                    int n);

#endif
