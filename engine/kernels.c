/* engine/kernels.c: which weight kernels run (the per-dtype tables of
 * kern_scalar.c, kern_avx2.c and its AVX-512 variant, chosen at run time
 * from what the CPU has), the layout of prepared activations (eng_xq), and
 * the small f32 kernels of the forward pass (RMSNorm, softmax, SwiGLU,
 * RoPE).
 */
#include <math.h>
#include <string.h>

#include "engine/kern_common.h"

#if defined(ENG_HAVE_AVX2)
static bool cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
#endif

#if defined(ENG_HAVE_AVX512)
static bool cpu_has_avx512(void)
{
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

/* Whether this CPU runs the kernels of isa (ENG_ISA_AVX2 or above). */
static bool cpu_runs(enum eng_isa isa)
{
#if defined(ENG_HAVE_AVX512)
    if (isa == ENG_ISA_AVX512)
        return cpu_has_avx512();
#endif
#if defined(ENG_HAVE_AVX2)
    if (isa == ENG_ISA_AVX2)
        return cpu_has_avx2();
#endif
    return isa == ENG_ISA_SCALAR;
}

/* The most capable ISA the kernels may use (eng_kernels_select): written
 * once at startup, before any thread reads it. */
static enum eng_isa isa_cap = ENG_ISA_AVX512;

enum eng_isa eng_isa_best(void)
{
    if (isa_cap >= ENG_ISA_AVX512 && cpu_runs(ENG_ISA_AVX512))
        return ENG_ISA_AVX512;
    if (isa_cap >= ENG_ISA_AVX2 && cpu_runs(ENG_ISA_AVX2))
        return ENG_ISA_AVX2;
    return ENG_ISA_SCALAR;
}

int eng_kernels_select(const char *name, struct sh_err *err)
{
    static const enum eng_isa all[] = {ENG_ISA_SCALAR, ENG_ISA_AVX2, ENG_ISA_AVX512};

    if (!name || !*name)
        return 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (strcmp(name, eng_isa_name(all[i])) != 0)
            continue;
        if (!cpu_runs(all[i]))
            return sh_err_set(err, SH_EINVAL,
                              "kernels '%s': this CPU or this build cannot run them", name);
        isa_cap = all[i];
        return 0;
    }
    return sh_err_set(err, SH_EINVAL, "kernels '%s': expected scalar, avx2 or avx512", name);
}

const char *eng_kernels_name(void)
{
    return eng_isa_name(eng_isa_best());
}

const char *eng_isa_name(enum eng_isa isa)
{
    return isa == ENG_ISA_AVX512 ? "avx512" : isa == ENG_ISA_AVX2 ? "avx2" : "scalar";
}

const struct eng_mat_ops *eng_mat_ops_isa(enum eng_dtype dt, enum eng_isa isa)
{
    const struct eng_mat_ops *table = eng_kern_scalar;

    if ((int)dt < 0 || dt >= ENG_DT_COUNT || !cpu_runs(isa))
        return NULL;
#if defined(ENG_HAVE_AVX512)
    if (isa == ENG_ISA_AVX512)
        table = eng_kern_avx512;
#endif
#if defined(ENG_HAVE_AVX2)
    if (isa == ENG_ISA_AVX2)
        table = eng_kern_avx2;
#endif
    return table[dt].dot_rows ? &table[dt] : NULL;
}

const struct eng_mat_ops *eng_mat_ops(enum eng_dtype dt)
{
    return eng_mat_ops_isa(dt, eng_isa_best());
}

const struct eng_kv_ops *eng_kv_ops_isa(enum eng_dtype dt, enum eng_isa isa)
{
    int i = dt == ENG_DT_F32 ? 0 : dt == ENG_DT_F16 ? 1 : -1;

    if (i < 0 || !cpu_runs(isa))
        return NULL;
#if defined(ENG_HAVE_AVX2)
    /* (AVX-512 has no attention kernels of its own) */
    if (isa >= ENG_ISA_AVX2)
        return &eng_kv_avx2[i];
#endif
    return &eng_kv_scalar[i];
}

const struct eng_kv_ops *eng_kv_ops(enum eng_dtype dt)
{
    return eng_kv_ops_isa(dt, eng_isa_best());
}

void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n)
{
    struct eng_mat v = {.dtype = dt,
                        .rows = 1,
                        .cols = (int64_t)n,
                        .row_stride = n * eng_dtype_info(dt)->size,
                        .data = src};
    eng_kern_scalar[dt].rows_to_f32(&v, 0, 1, dst);
}

/* ---- prepared activations: header, then q, t, d, s, pairs, dl, sl, each
 * 32-byte aligned */

#define XQ_ALIGN 32

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Elements and groups the arrays hold: whole 64-element blocks and whole
 * 8-group batches, zero-padded, so the kernels never load past them. */
static size_t xq_elems(int64_t cols, int group_size)
{
    size_t e = round_up((size_t)cols, 64);
    size_t b = group_size ? round_up((size_t)cols / (size_t)group_size, 8) * (size_t)group_size : 0;
    return e > b ? e : b;
}

/* (group_size 0: float weights, which have no groups) */
static size_t xq_groups(int64_t cols, int group_size)
{
    return group_size ? round_up((size_t)cols / (size_t)group_size, 8) : 0;
}

/* Lanes of q (and dl, sl): a flat matrix's batches repeat every
 * ng / gcd(ng, 8) batches, 8 * ng lanes at most. */
static size_t xq_lanes(int64_t cols, int group_size)
{
    return group_size ? 8 * ((size_t)cols / (size_t)group_size) : 0;
}

/* The arrays' places after the header, each 32-byte aligned: written into
 * xq (laid out at xq itself) when xq is not NULL; returns the bytes they
 * take. One walk for both, so that the size always matches the layout. */
static size_t xq_layout(int64_t cols, int group_size, struct eng_xq *xq)
{
    size_t e = xq_elems(cols, group_size), g = xq_groups(cols, group_size);
    size_t l = xq_lanes(cols, group_size),
           qe = l * (size_t)group_size > e ? l * (size_t)group_size : e;
    size_t sizes[] = {qe * sizeof(int16_t), e * sizeof(int32_t),      g * sizeof(float),
                      g * sizeof(float),    e / 2 * sizeof(uint32_t), l * sizeof(float),
                      l * sizeof(float)};
    void *at[sizeof sizes / sizeof *sizes];
    size_t off = round_up(sizeof(struct eng_xq), XQ_ALIGN);

    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        at[i] = xq ? (uint8_t *)xq + off : NULL;
        off += round_up(sizes[i], XQ_ALIGN);
    }
    if (xq) {
        xq->q = at[0];
        xq->t = at[1];
        xq->d = at[2];
        xq->s = at[3];
        xq->pairs = at[4];
        xq->dl = at[5];
        xq->sl = at[6];
    }
    return off;
}

size_t eng_xq_bytes(int64_t cols, int group_size)
{
    return xq_layout(cols, group_size, NULL);
}

struct eng_xq *eng_xq_init(void *buf, int64_t cols, int group_size, enum eng_dtype dt, int bits)
{
    size_t g = xq_groups(cols, group_size);
    size_t ng = group_size ? (size_t)cols / (size_t)group_size : 0;
    struct eng_xq *xq = buf;

    xq->cols = cols;
    xq->group_size = group_size;
    xq->dtype = dt;
    xq->bits = bits == 8 && dt == ENG_DT_Q4 ? 8 : 16;
    xq->x = NULL;
    xq_layout(cols, group_size, xq);
    /* the padding groups contribute 0 * 0 to every dot product */
    for (size_t i = ng; i < g; i++)
        xq->d[i] = xq->s[i] = 0.0f;
    return xq;
}

/* ---- f32 kernels of the forward pass */

void eng_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0; /* double: n can be thousands of squares */
    float scale;

    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * scale);
}

void eng_softmax(float *x, int n)
{
    float max = x[0], sum = 0.0f;

    for (int i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

void eng_swiglu_isa(enum eng_isa isa, float *gate, const float *up, size_t n)
{
#if defined(ENG_HAVE_AVX2)
    if (isa >= ENG_ISA_AVX2 && cpu_runs(isa)) {
        eng_swiglu_avx2(gate, up, n);
        return;
    }
#else
    (void)isa;
#endif
    for (size_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void eng_swiglu(float *gate, const float *up, size_t n)
{
    eng_swiglu_isa(eng_isa_best(), gate, up, n);
}

float eng_dot(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    float sum = 0.0f;
    int i = 0;

    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        acc[0] += a[i] * b[i];
    for (int j = 0; j < 16; j++)
        sum += acc[j];
    return sum;
}

void eng_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void eng_rope(float *v, int n_heads, int head_dim, const float *cos, const float *sin)
{
    int half = head_dim / 2;

    for (int h = 0; h < n_heads; h++) {
        float *a = v + (size_t)h * (size_t)head_dim, *b = a + half;
        for (int i = 0; i < half; i++) {
            float x0 = a[i], x1 = b[i];
            a[i] = x0 * cos[i] - x1 * sin[i];
            b[i] = x1 * cos[i] + x0 * sin[i];
        }
    }
}
