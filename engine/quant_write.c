/* engine/quant_write.c: `shoal quantize`: writes an MLX affine-quantized
 * copy of a float model folder, in the layout mlx_lm.convert -q writes
 * (mlx-lm 0.32 utils.py quantize_model / save_model / save_config):
 *  - every linear and embedding weight (2-D "*.weight" of a module the
 *    engine binds as a matrix) whose input dimension is a multiple of the
 *    group size becomes M.weight (U32 codes), M.scales, M.biases, the
 *    scales and biases in the model's float dtype; everything else (norms,
 *    biases) is copied in that dtype; a tied lm_head is dropped;
 *  - model.safetensors (model-0000N-of-0000M.safetensors past 5 GB) with
 *    metadata {"format": "mlx"}, tensors sorted by name;
 *  - model.safetensors.index.json with total_size and total_parameters
 *    (quantized weights counted unpacked) and a sorted weight_map;
 *  - config.json = the source's plus "quantization" and an identical
 *    "quantization_config"; the other files of the folder (tokenizer,
 *    generation config) copied as they are.
 * Everything is written into a temporary sibling folder renamed into place
 * at the end: an error leaves no partial output.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/kern_common.h"

#define SHARD_BYTES  ((uint64_t)5 << 30) /* mlx-lm's max_file_size_gb = 5 */
#define MAX_NAME     512
#define ROWS_PER_RUN 64 /* rows converted to f32 at a time */

/* One tensor of the output. */
struct out_tensor {
    char name[MAX_NAME];
    enum eng_dtype dtype; /* on disk: U32 codes, or a float dtype */
    int64_t shape[2];
    int n_dims;
    uint64_t nbytes;
    uint64_t params; /* counted in total_parameters */
    /* where it comes from */
    const struct eng_tensor *src;
    enum { OUT_COPY, OUT_CODES, OUT_SCALES, OUT_BIASES } kind;
    int shard;
    uint64_t offset; /* in its shard's data section */
};

struct plan {
    struct out_tensor *t;
    size_t n;
    int n_shards;
    enum eng_dtype fdt; /* float dtype of the output */
    int bits, gs;
};

static int cmp_out(const void *a, const void *b)
{
    return strcmp(((const struct out_tensor *)a)->name, ((const struct out_tensor *)b)->name);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Tensor names go into JSON unescaped: allow what checkpoints use. */
static bool plain_name(const char *s)
{
    if (!*s || strlen(s) >= MAX_NAME - 16)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* The modules the engine binds as matrices (model.c); MLX quantizes every
 * nn.Linear and nn.Embedding, which in these families are exactly these. */
static bool is_matrix_module(const char *name)
{
    static const char *const suffixes[] = {
        "embed_tokens.weight", "lm_head.weight",  "q_proj.weight",    "k_proj.weight",
        "v_proj.weight",       "o_proj.weight",   "gate_proj.weight", "up_proj.weight",
        "down_proj.weight",    "mlp.gate.weight",
    };
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (ends_with(name, suffixes[i]))
            return true;
    return false;
}

static struct out_tensor *add(struct plan *p, const char *name, const char *suffix)
{
    struct out_tensor *o = &p->t[p->n++];
    size_t a = strlen(name), b = strlen(suffix);
    memset(o, 0, sizeof *o);
    /* plain_name() bounded name to MAX_NAME - 16: the suffixes fit */
    memcpy(o->name, name, a);
    memcpy(o->name + a, suffix, b + 1);
    return o;
}

static int
make_plan(const struct eng_st *st, const struct eng_config *c, struct plan *p, struct sh_err *err)
{
    uint64_t shard_bytes = 0;

    if (!(p->t = calloc(3 * st->n_tensors + 1, sizeof *p->t)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->n_tensors; i++) {
        const struct eng_tensor *t = &st->tensors[i];
        struct out_tensor *o;
        if (!plain_name(t->name))
            return sh_err_set(err, SH_EUNSUPPORTED, "tensor name \"%.60s\" is not supported",
                              t->name);
        if (c->tie_embeddings && strncmp(t->name, "lm_head.", 8) == 0)
            continue; /* mlx-lm's sanitize() drops it */
        if (t->dtype != ENG_DT_F32 && t->dtype != ENG_DT_F16 && t->dtype != ENG_DT_BF16)
            return sh_err_set(err, SH_EUNSUPPORTED,
                              "%s: tensor %s is %s; quantize takes F32, F16 or BF16 models",
                              eng_st_file_of(st, t), t->name, eng_dtype_info(t->dtype)->st_name);
        if (t->n_dims == 2 && is_matrix_module(t->name) && t->shape[1] % p->gs == 0) {
            char module[MAX_NAME];
            int64_t ng = t->shape[1] / p->gs;
            size_t mlen = strlen(t->name) - strlen(".weight");
            memcpy(module, t->name, mlen);
            module[mlen] = '\0';
            o = add(p, module, ".weight");
            o->kind = OUT_CODES;
            o->dtype = ENG_DT_U32;
            o->n_dims = 2;
            o->shape[0] = t->shape[0];
            o->shape[1] = t->shape[1] * p->bits / 32;
            o->nbytes = (uint64_t)o->shape[0] * (uint64_t)o->shape[1] * 4;
            o->params = t->n_elems;
            o->src = t;
            for (int k = 0; k < 2; k++) {
                o = add(p, module, k ? ".biases" : ".scales");
                o->kind = k ? OUT_BIASES : OUT_SCALES;
                o->dtype = p->fdt;
                o->n_dims = 2;
                o->shape[0] = t->shape[0];
                o->shape[1] = ng;
                o->nbytes = (uint64_t)t->shape[0] * (uint64_t)ng * eng_dtype_info(p->fdt)->size;
                o->src = t;
            }
            continue;
        }
        o = add(p, t->name, "");
        o->kind = OUT_COPY;
        o->dtype = p->fdt;
        o->n_dims = t->n_dims;
        if (t->n_dims < 1 || t->n_dims > 2)
            return sh_err_set(err, SH_EUNSUPPORTED, "tensor %s: %d dimensions", t->name, t->n_dims);
        o->shape[0] = t->shape[0];
        o->shape[1] = t->n_dims == 2 ? t->shape[1] : 1;
        o->nbytes = t->n_elems * eng_dtype_info(p->fdt)->size;
        o->params = t->n_elems;
        o->src = t;
    }
    qsort(p->t, p->n, sizeof *p->t, cmp_out);
    /* shards in name order, each up to SHARD_BYTES (at least one tensor) */
    p->n_shards = 1;
    for (size_t i = 0; i < p->n; i++) {
        if (shard_bytes > 0 && shard_bytes + p->t[i].nbytes > SHARD_BYTES) {
            p->n_shards++;
            shard_bytes = 0;
        }
        p->t[i].shard = p->n_shards - 1;
        p->t[i].offset = shard_bytes;
        shard_bytes += p->t[i].nbytes;
    }
    return 0;
}

static void shard_name(const struct plan *p, int s, char *out, size_t cap)
{
    if (p->n_shards == 1)
        snprintf(out, cap, "model.safetensors");
    else
        snprintf(out, cap, "model-%05d-of-%05d.safetensors", s + 1, p->n_shards);
}

/* ---- writing data */

struct writer {
    FILE *f;
    const char *path;
    struct sh_err *err;
};

static int put(struct writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return sh_err_set(w->err, SH_EIO, "%s: write: %s", w->path, strerror(errno));
    return 0;
}

static void store_float(enum eng_dtype dt, float v, uint8_t *dst)
{
    if (dt == ENG_DT_F32) {
        memcpy(dst, &v, 4);
    } else {
        uint16_t h = dt == ENG_DT_BF16 ? eng_f32_to_bf16(v) : eng_f32_to_f16(v);
        memcpy(dst, &h, 2);
    }
}

/* Rounds f32 values to dt and back (the --dtype conversion before
 * quantizing, as mlx_lm.convert --dtype casts first). */
static void round_to(enum eng_dtype dt, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == ENG_DT_BF16)
            v[i] = eng_bf16_to_f32(eng_f32_to_bf16(v[i]));
        else if (dt == ENG_DT_F16)
            v[i] = eng_f16_to_f32(eng_f32_to_f16(v[i]));
    }
}

/* Streams one output tensor. Quantized modules are computed three times
 * (codes, scales, biases are separate tensors in name order); the cost is
 * small next to the I/O. */
static int write_tensor(struct writer *w, const struct plan *p, const struct out_tensor *o)
{
    const struct eng_tensor *t = o->src;
    int64_t rows = t->shape[0], cols = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    struct eng_mat m = {.dtype = t->dtype,
                        .rows = t->n_dims == 2 ? rows : 1,
                        .cols = cols,
                        .row_stride = (size_t)cols * eng_dtype_info(t->dtype)->size,
                        .data = t->data};
    const struct eng_mat_ops *ops = eng_mat_ops(t->dtype);
    size_t run = ROWS_PER_RUN, fsz = eng_dtype_info(p->fdt)->size;
    float *f = malloc(run * (size_t)cols * sizeof *f);
    uint8_t *buf = malloc(run * (size_t)cols * 4), *codes = malloc((size_t)cols);
    int rc = 0;

    if (!f || !buf || !codes) {
        rc = sh_err_set(w->err, SH_ENOMEM, "out of memory for tensor %s", t->name);
        goto out;
    }
    for (int64_t r0 = 0; r0 < m.rows && !rc; r0 += (int64_t)run) {
        int64_t r1 = r0 + (int64_t)run < m.rows ? r0 + (int64_t)run : m.rows;
        size_t len = 0;
        ops->rows_to_f32(&m, r0, r1, f);
        round_to(p->fdt, f, (size_t)((r1 - r0) * cols));
        for (int64_t r = r0; r < r1; r++) {
            const float *row = f + (size_t)(r - r0) * (size_t)cols;
            if (o->kind == OUT_COPY) {
                for (int64_t i = 0; i < cols; i++, len += fsz)
                    store_float(p->fdt, row[i], buf + len);
                continue;
            }
            for (int64_t g = 0; g < cols / p->gs; g++) {
                float s, b;
                eng_quant_group(row + g * p->gs, p->gs, p->bits, p->fdt, codes + g * p->gs, &s, &b);
                if (o->kind == OUT_SCALES)
                    store_float(p->fdt, s, buf + len), len += fsz;
                else if (o->kind == OUT_BIASES)
                    store_float(p->fdt, b, buf + len), len += fsz;
            }
            if (o->kind == OUT_CODES) {
                eng_quant_pack(codes, cols, p->bits, buf + len);
                len += (size_t)(cols * p->bits / 8);
            }
        }
        rc = put(w, buf, len);
    }
out:
    free(f);
    free(buf);
    free(codes);
    return rc;
}

static int write_shard(const char *dir, const struct plan *p, int s, struct sh_err *err)
{
    char name[64], path[4096];
    struct sh_strbuf h;
    struct writer w = {.err = err};
    uint64_t data = 0;
    int rc;

    shard_name(p, s, name, sizeof name);
    if ((rc = sh_path_join(path, sizeof path, dir, name, err)))
        return rc;
    sh_strbuf_init(&h, ENG_ST_MAX_HEADER);
    rc = sh_strbuf_puts(&h, "{\"__metadata__\":{\"format\":\"mlx\"}");
    for (size_t i = 0; i < p->n && !rc; i++) {
        const struct out_tensor *o = &p->t[i];
        if (o->shard != s)
            continue;
        rc = sh_strbuf_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", o->name,
                              eng_dtype_info(o->dtype)->st_name, (long long)o->shape[0]);
        if (!rc && o->n_dims == 2)
            rc = sh_strbuf_printf(&h, ",%lld", (long long)o->shape[1]);
        if (!rc)
            rc = sh_strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}",
                                  (unsigned long long)o->offset,
                                  (unsigned long long)(o->offset + o->nbytes));
    }
    if (!rc)
        rc = sh_strbuf_puts(&h, "}");
    /* pad with spaces so the data section starts 8-byte aligned */
    while (!rc && (8 + h.len) % 8 != 0)
        rc = sh_strbuf_puts(&h, " ");
    if (rc) {
        sh_strbuf_free(&h);
        return sh_err_set(err, rc, "%s: header too large", path);
    }
    w.path = path;
    if (!(w.f = fopen(path, "wb"))) {
        sh_strbuf_free(&h);
        return sh_err_set(err, SH_EIO, "%s: %s", path, strerror(errno));
    }
    {
        uint8_t len8[8];
        sh_put_u64(len8, h.len);
        rc = put(&w, len8, 8);
    }
    if (!rc)
        rc = put(&w, h.buf, h.len);
    sh_strbuf_free(&h);
    for (size_t i = 0; i < p->n && !rc; i++) {
        if (p->t[i].shard != s)
            continue;
        if (p->t[i].offset != data)
            rc = sh_err_set(err, SH_EINTERNAL, "%s: offsets out of order", path);
        else
            rc = write_tensor(&w, p, &p->t[i]);
        data += p->t[i].nbytes;
    }
    if (fclose(w.f) != 0 && !rc)
        rc = sh_err_set(err, SH_EIO, "%s: %s", path, strerror(errno));
    return rc;
}

/* ---- the JSON files */

static int write_json_file(const char *dir, const char *name, cJSON *j, struct sh_err *err)
{
    char path[4096];
    char *text;
    int rc;

    if ((rc = sh_path_join(path, sizeof path, dir, name, err)))
        return rc;
    if (!(text = cJSON_Print(j)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    rc = sh_write_file_atomic(path, text, strlen(text), 0644, err);
    free(text);
    return rc;
}

static cJSON *quant_object(const struct plan *p)
{
    cJSON *q = cJSON_CreateObject();
    if (q) {
        cJSON_AddNumberToObject(q, "group_size", p->gs);
        cJSON_AddNumberToObject(q, "bits", p->bits);
        cJSON_AddStringToObject(q, "mode", "affine");
    }
    return q;
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Sorts an object's keys (mlx-lm writes config.json with sort_keys). */
static int sort_keys(cJSON *o)
{
    int n = cJSON_GetArraySize(o), i = 0;
    cJSON **items, *e;

    if (n < 2)
        return 0;
    if (!(items = malloc((size_t)n * sizeof *items)))
        return SH_ENOMEM;
    cJSON_ArrayForEach(e, o) items[i++] = e;
    qsort(items, (size_t)n, sizeof *items, cmp_item);
    for (i = 0; i < n; i++) {
        items[i]->prev = i ? items[i - 1] : items[n - 1];
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
    }
    o->child = items[0];
    free(items);
    return 0;
}

static int write_config(const char *src, const char *dir, const struct plan *p, struct sh_err *err)
{
    char path[4096];
    cJSON *cfg = NULL;
    int rc;

    if ((rc = sh_path_join(path, sizeof path, src, "config.json", err)) ||
        (rc = sh_json_parse_file(path, 4u << 20, &cfg, err)))
        return rc;
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    if (!cJSON_AddItemToObject(cfg, "quantization", quant_object(p)) ||
        !cJSON_AddItemToObject(cfg, "quantization_config", quant_object(p)) || sort_keys(cfg))
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
    else
        rc = write_json_file(dir, "config.json", cfg, err);
    cJSON_Delete(cfg);
    return rc;
}

static int write_index(const char *dir, const struct plan *p, struct sh_err *err)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *map = cJSON_CreateObject();
    uint64_t size = 0, params = 0;
    int rc = 0;

    if (!root || !meta || !map) {
        cJSON_Delete(root);
        cJSON_Delete(meta);
        cJSON_Delete(map);
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < p->n; i++) {
        char name[64];
        size += p->t[i].nbytes;
        params += p->t[i].params;
        shard_name(p, p->t[i].shard, name, sizeof name);
        if (!cJSON_AddStringToObject(map, p->t[i].name, name))
            rc = SH_ENOMEM;
    }
    cJSON_AddItemToObject(root, "metadata", meta);
    cJSON_AddNumberToObject(meta, "total_size", (double)size);
    cJSON_AddNumberToObject(meta, "total_parameters", (double)params);
    cJSON_AddItemToObject(root, "weight_map", map);
    if (rc)
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
    else
        rc = write_json_file(dir, "model.safetensors.index.json", root, err);
    cJSON_Delete(root);
    return rc;
}

/* Copies the folder's other regular files (tokenizer, generation config). */
static int copy_others(const char *src, const char *dir, struct sh_err *err)
{
    DIR *d = opendir(src);
    struct dirent *e;
    int rc = 0;

    if (!d)
        return sh_err_set(err, SH_EIO, "%s: %s", src, strerror(errno));
    while (!rc && (e = readdir(d))) {
        char from[4096], to[4096];
        char *data = NULL;
        size_t len = 0;
        struct stat sb;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "config.json") == 0 ||
            ends_with(e->d_name, ".safetensors") ||
            strcmp(e->d_name, "model.safetensors.index.json") == 0)
            continue;
        if ((rc = sh_path_join(from, sizeof from, src, e->d_name, err)) ||
            (rc = sh_path_join(to, sizeof to, dir, e->d_name, err)))
            break;
        if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if ((rc = sh_read_file(from, (size_t)1 << 30, &data, &len, err)) == 0)
            rc = sh_write_file_atomic(to, data, len, 0644, err);
        free(data);
    }
    closedir(d);
    return rc;
}

/* Removes a folder this run made (files only, one level). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d) {
        while ((e = readdir(d))) {
            char path[4096];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

int eng_quantize(const char *src_dir,
                 const char *out_dir,
                 const struct eng_quantize_opts *opts,
                 struct sh_err *err)
{
    struct eng_config c;
    struct eng_gen_defaults g;
    struct eng_quant q = {0};
    struct eng_st st = {0};
    struct plan p = {.bits = opts->bits, .gs = opts->group_size};
    char tmp[4096];
    uint64_t best[ENG_DT_COUNT] = {0};
    int rc;

    if (opts->bits != 4 && opts->bits != 8)
        return sh_err_set(err, SH_EINVAL, "--bits %d: 4 or 8", opts->bits);
    if (opts->group_size != 32 && opts->group_size != 64 && opts->group_size != 128)
        return sh_err_set(err, SH_EINVAL, "--group-size %d: 32, 64 or 128", opts->group_size);
    if (sh_path_exists(out_dir))
        return sh_err_set(err, SH_EEXIST, "%s already exists", out_dir);
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_dir, (long)getpid()) >= (int)sizeof tmp)
        return sh_err_set(err, SH_ETOOBIG, "%s: path too long", out_dir);
    if ((rc = eng_config_load(src_dir, &c, &g, &q, err)))
        return rc;
    if (q.bits) {
        eng_quant_free(&q);
        return sh_err_set(err, SH_EINVAL, "%s is already quantized (%d-bit)", src_dir,
                          c.quant_bits);
    }
    if ((rc = eng_st_open(src_dir, &st, err)))
        return rc;
    /* the model's float dtype: asked for, or the one most bytes are in */
    for (size_t i = 0; i < st.n_tensors; i++)
        best[st.tensors[i].dtype] += st.tensors[i].nbytes;
    p.fdt = best[ENG_DT_BF16] >= best[ENG_DT_F16] ? ENG_DT_BF16 : ENG_DT_F16;
    if (best[ENG_DT_F32] > best[p.fdt])
        p.fdt = ENG_DT_F32;
    if (opts->dtype) {
        if (strcasecmp(opts->dtype, "bf16") == 0)
            p.fdt = ENG_DT_BF16;
        else if (strcasecmp(opts->dtype, "f16") == 0)
            p.fdt = ENG_DT_F16;
        else if (strcasecmp(opts->dtype, "f32") == 0)
            p.fdt = ENG_DT_F32;
        else
            rc = sh_err_set(err, SH_EINVAL, "--dtype %s: bf16, f16 or f32", opts->dtype);
    }
    if (!rc)
        rc = make_plan(&st, &c, &p, err);
    if (!rc && mkdir(tmp, 0755) != 0)
        rc = sh_err_set(err, SH_EIO, "%s: %s", tmp, strerror(errno));
    else if (!rc) {
        for (int s = 0; s < p.n_shards && !rc; s++)
            rc = write_shard(tmp, &p, s, err);
        if (!rc)
            rc = write_index(tmp, &p, err);
        if (!rc)
            rc = write_config(src_dir, tmp, &p, err);
        if (!rc)
            rc = copy_others(src_dir, tmp, err);
        if (!rc && rename(tmp, out_dir) != 0)
            rc = sh_err_set(err, SH_EIO, "rename %s -> %s: %s", tmp, out_dir, strerror(errno));
        if (rc)
            remove_tree(tmp);
    }
    free(p.t);
    eng_st_close(&st);
    return rc;
}
