/* engine/safetensors.c: reading safetensors files (single or sharded with
 * model.safetensors.index.json) into a validated table of tensor views.
 *
 * A safetensors file is: an 8-byte little-endian header length N, N bytes of
 * JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {...}}), then the data section; offsets are relative to its start.
 * Everything in the header comes from outside, so it is checked before any
 * pointer is formed (as ggml's gguf.cpp does): the length against the file
 * and a cap, every dimension and product against overflow, every offset pair
 * against the data section and against shape x dtype size, no two tensors
 * overlapping, every element aligned for its dtype. Only then do callers get
 * `data` pointers, which stay inside the mapping by construction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "engine/internal.h"

/* Integers in JSON are doubles to cJSON: above 2^53 they are not exact. */
#define MAX_JSON_INT ((int64_t)1 << 53)

static const struct eng_dtype_info dtypes[ENG_DT_COUNT] = {
    [ENG_DT_F32] = {"F32", "f32", 4},
    [ENG_DT_F16] = {"F16", "f16", 2},
    [ENG_DT_BF16] = {"BF16", "bf16", 2},
    [ENG_DT_F64] = {"F64", "f64", 8},
    [ENG_DT_I64] = {"I64", "i64", 8},
    [ENG_DT_I32] = {"I32", "i32", 4},
    [ENG_DT_I16] = {"I16", "i16", 2},
    [ENG_DT_I8] = {"I8", "i8", 1},
    [ENG_DT_U64] = {"U64", "u64", 8},
    [ENG_DT_U32] = {"U32", "u32", 4},
    [ENG_DT_U16] = {"U16", "u16", 2},
    [ENG_DT_U8] = {"U8", "u8", 1},
    [ENG_DT_BOOL] = {"BOOL", "bool", 1},
    [ENG_DT_F8_E4M3] = {"F8_E4M3", "f8_e4m3", 1},
    [ENG_DT_F8_E5M2] = {"F8_E5M2", "f8_e5m2", 1},
    [ENG_DT_Q4] = {NULL, "q4", 0},
    [ENG_DT_Q8] = {NULL, "q8", 0},
};

const struct eng_dtype_info *eng_dtype_info(enum eng_dtype dt)
{
    return &dtypes[dt];
}

bool eng_dtype_from_st(const char *st_name, enum eng_dtype *out)
{
    for (int i = 0; i < ENG_DT_COUNT; i++) {
        if (dtypes[i].st_name && strcmp(dtypes[i].st_name, st_name) == 0) {
            *out = (enum eng_dtype)i;
            return true;
        }
    }
    return false;
}

static void free_tensors(struct eng_tensor *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].name);
    free(t);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct eng_tensor *)a)->name, ((const struct eng_tensor *)b)->name);
}

/* Within one file: by start offset, to find overlaps. */
static int cmp_offset(const void *a, const void *b)
{
    const struct eng_tensor *x = a, *y = b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    return px < py ? -1 : px > py;
}

/* One header entry -> t (name not set). data is the start of the data
 * section, data_size its length. */
static int parse_entry(const cJSON *e,
                       const char *what,
                       const uint8_t *data,
                       uint64_t data_size,
                       struct eng_tensor *t,
                       struct sh_err *err)
{
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const cJSON *d;
    uint64_t begin, end, size;
    size_t esize;

    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: expected {dtype, shape, data_offsets}", what, name);
    if (!eng_dtype_from_st(dt->valuestring, &t->dtype))
        return sh_err_set(err, SH_EUNSUPPORTED, "%s: tensor %s: dtype \"%.32s\" is not supported",
                          what, name, dt->valuestring);
    esize = dtypes[t->dtype].size;
    t->n_dims = 0;
    t->n_elems = 1;
    cJSON_ArrayForEach(d, shape)
    {
        if (t->n_dims == ENG_ST_MAX_DIMS)
            return sh_err_set(err, SH_EMALFORMED, "%s: tensor %s: more than %d dimensions", what,
                              name, ENG_ST_MAX_DIMS);
        if (!sh_json_is_int(d, 0, MAX_JSON_INT))
            return sh_err_set(err, SH_EMALFORMED,
                              "%s: tensor %s: shape[%d] is not a non-negative integer", what, name,
                              t->n_dims);
        t->shape[t->n_dims] = (int64_t)d->valuedouble;
        if (!sh_mul_u64(t->n_elems, (uint64_t)t->shape[t->n_dims], &t->n_elems))
            return sh_err_set(err, SH_EMALFORMED, "%s: tensor %s: element count overflows", what,
                              name);
        t->n_dims++;
    }
    if (!sh_mul_u64(t->n_elems, esize, &size))
        return sh_err_set(err, SH_EMALFORMED, "%s: tensor %s: byte size overflows", what, name);
    if (cJSON_GetArraySize(offs) != 2 ||
        !sh_json_is_int(cJSON_GetArrayItem(offs, 0), 0, MAX_JSON_INT) ||
        !sh_json_is_int(cJSON_GetArrayItem(offs, 1), 0, MAX_JSON_INT))
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: data_offsets must be [begin, end] non-negative integers",
                          what, name);
    begin = (uint64_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
    end = (uint64_t)cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (end < begin)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: data_offsets end %llu is before begin %llu", what, name,
                          (unsigned long long)end, (unsigned long long)begin);
    if (end > data_size)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: data_offsets [%llu, %llu] pass the end of the data "
                          "section (%llu bytes)",
                          what, name, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)data_size);
    if (end - begin != size)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: data_offsets span %llu bytes but shape x %s needs %llu",
                          what, name, (unsigned long long)(end - begin), dtypes[t->dtype].st_name,
                          (unsigned long long)size);
    t->data = data + begin;
    t->nbytes = size;
    /* Kernels load elements through typed pointers. */
    if ((uintptr_t)t->data % esize != 0)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: tensor %s: data is not aligned to its %zu-byte elements", what, name,
                          esize);
    return 0;
}

int eng_st_parse(const void *data,
                 size_t size,
                 const char *what,
                 int file,
                 struct eng_tensor **tensors,
                 size_t *n,
                 struct sh_err *err)
{
    const uint8_t *base = data;
    struct eng_tensor *loc = NULL, *grown;
    cJSON *root = NULL;
    const cJSON *e;
    uint64_t hlen, data_size;
    size_t count = 0, cap = 0, total;
    int rc = 0;

    if (size < 8)
        return sh_err_set(err, SH_EMALFORMED, "%s: %zu bytes is too short for a safetensors header",
                          what, size);
    hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | base[i];
    if (hlen == 0)
        return sh_err_set(err, SH_EMALFORMED, "%s: header length is 0", what);
    if (hlen > ENG_ST_MAX_HEADER)
        return sh_err_set(err, SH_EMALFORMED, "%s: header length %llu exceeds the %u-byte limit",
                          what, (unsigned long long)hlen, ENG_ST_MAX_HEADER);
    if (hlen > size - 8)
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: header length %llu passes the end of the file (%zu bytes)", what,
                          (unsigned long long)hlen, size);
    data_size = size - 8 - hlen;
    if ((rc = sh_json_parse((const char *)base + 8, (size_t)hlen, what, &root, err)))
        return rc;
    if (!cJSON_IsObject(root)) {
        rc = sh_err_set(err, SH_EMALFORMED, "%s: header is not a JSON object", what);
        goto out;
    }
    /* The array grows with the entries that parse (doubling), so a header
     * of a million junk members costs nothing before the first is refused. */
    cJSON_ArrayForEach(e, root)
    {
        struct eng_tensor t = {0};
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = sh_err_set(err, SH_EMALFORMED, "%s: __metadata__ is not an object", what);
                goto out;
            }
            continue;
        }
        if ((rc = parse_entry(e, what, base + 8 + hlen, data_size, &t, err)))
            goto out;
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct eng_tensor *bigger = realloc(loc, ncap * sizeof *loc);
            if (!bigger) {
                rc = sh_err_set(err, SH_ENOMEM, "%s: out of memory for %zu tensors", what, ncap);
                goto out;
            }
            loc = bigger;
            cap = ncap;
        }
        t.file = file;
        if (!(t.name = strdup(e->string))) {
            rc = sh_err_set(err, SH_ENOMEM, "%s: out of memory", what);
            goto out;
        }
        loc[count++] = t;
    }
    /* No byte may belong to two tensors (empty tensors own no bytes). */
    if (count > 1)
        qsort(loc, count, sizeof *loc, cmp_offset);
    for (size_t i = 1, last = 0; i < count; i++) {
        if (loc[i].nbytes == 0)
            continue;
        if (loc[last].nbytes &&
            (const uint8_t *)loc[i].data < (const uint8_t *)loc[last].data + loc[last].nbytes) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: tensors %s and %s overlap", what,
                            loc[last].name, loc[i].name);
            goto out;
        }
        last = i;
    }
    if (count > 1)
        qsort(loc, count, sizeof *loc, cmp_name);
    for (size_t i = 1; i < count; i++) {
        if (strcmp(loc[i - 1].name, loc[i].name) == 0) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: tensor %s is listed twice", what, loc[i].name);
            goto out;
        }
    }
    if (!sh_add_size(*n, count, &total) || total > SIZE_MAX / sizeof *grown ||
        !(grown = realloc(*tensors, (total ? total : 1) * sizeof *grown))) {
        rc = sh_err_set(err, SH_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    if (count)
        memcpy(grown + *n, loc, count * sizeof *loc);
    *tensors = grown;
    *n = total;
    free(loc);
    loc = NULL;
    count = 0;
out:
    free_tensors(loc, count);
    cJSON_Delete(root);
    return rc;
}

/* ---- opening a model folder */

static int map_and_parse(struct eng_st *st,
                         const char *dir,
                         const char *name,
                         struct eng_tensor **all,
                         size_t *n_all,
                         struct sh_err *err)
{
    char path[4096];
    struct eng_st_file *f = &st->files[st->n_files];
    int rc;

    if ((rc = sh_path_join(path, sizeof path, dir, name, err)))
        return rc;
    if (!(f->path = strdup(path)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    st->n_files++;
    if ((rc = sh_map_file(path, &f->map, err)))
        return rc;
    return eng_st_parse(f->map.data, f->map.size, f->path, st->n_files - 1, all, n_all, err);
}

/* A shard name from the index must be a file in dir, nothing else. */
static bool plain_file_name(const char *s)
{
    return *s && strlen(s) < 256 && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

struct shard_key {
    int file;
    const char *name;
};

static int cmp_file_name(const void *a, const void *b)
{
    const struct eng_tensor *x = a, *y = b;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_key(const void *k, const void *t)
{
    const struct shard_key *key = k;
    const struct eng_tensor *y = t;
    if (key->file != y->file)
        return key->file < y->file ? -1 : 1;
    return strcmp(key->name, y->name);
}

static int
open_sharded(const char *dir, const char *index_path, struct eng_st *st, struct sh_err *err)
{
    cJSON *root = NULL;
    const cJSON *map, *e;
    struct eng_tensor *all = NULL;
    size_t n_all = 0, n_map = 0;
    const char **shards = NULL; /* borrowed from root */
    int n_shards = 0, rc;

    if ((rc = sh_json_parse_file(index_path, ENG_ST_MAX_INDEX, &root, err)))
        return rc;
    map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        rc = sh_err_set(err, SH_EMALFORMED, "%s: \"weight_map\" is missing or not an object",
                        index_path);
        goto out;
    }
    /* The distinct shard names, in first-seen order. */
    cJSON_ArrayForEach(e, map) n_map++;
    if (!(shards = calloc(n_map ? n_map : 1, sizeof *shards))) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(e, map)
    {
        int j;
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            rc = sh_err_set(err, SH_EMALFORMED,
                            "%s: weight_map[\"%s\"] is not a file name in the model folder",
                            index_path, e->string);
            goto out;
        }
        for (j = 0; j < n_shards && strcmp(shards[j], e->valuestring) != 0; j++)
            ;
        if (j == n_shards) {
            if (n_shards == ENG_ST_MAX_SHARDS) {
                rc = sh_err_set(err, SH_EUNSUPPORTED, "%s: more than %d shards", index_path,
                                ENG_ST_MAX_SHARDS);
                goto out;
            }
            shards[n_shards++] = e->valuestring;
        }
    }
    if (!(st->files = calloc((size_t)(n_shards ? n_shards : 1), sizeof *st->files))) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < n_shards; j++) {
        if ((rc = map_and_parse(st, dir, shards[j], &all, &n_all, err))) {
            if (rc == SH_ENOTFOUND)
                sh_err_wrap(err, "shard named by %s", index_path);
            goto out;
        }
    }
    if (n_all > 1)
        qsort(all, n_all, sizeof *all, cmp_file_name);
    /* The table is the index: each entry must be in the shard it names. */
    if (!(st->tensors = calloc(n_map ? n_map : 1, sizeof *st->tensors))) {
        rc = sh_err_set(err, SH_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(e, map)
    {
        struct shard_key key = {0, e->string};
        struct eng_tensor *t, copy;
        while (strcmp(shards[key.file], e->valuestring) != 0)
            key.file++;
        t = bsearch(&key, all, n_all, sizeof *all, cmp_key);
        if (!t) {
            rc = sh_err_set(err, SH_ENOTFOUND, "%s: tensor %s is not in shard %s", index_path,
                            e->string, st->files[key.file].path);
            goto out;
        }
        copy = *t;
        if (!(copy.name = strdup(e->string))) {
            rc = sh_err_set(err, SH_ENOMEM, "out of memory");
            goto out;
        }
        st->tensors[st->n_tensors++] = copy;
    }
    if (st->n_tensors > 1)
        qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_name);
    for (size_t i = 1; i < st->n_tensors; i++) {
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            rc = sh_err_set(err, SH_EMALFORMED, "%s: tensor %s is listed twice", index_path,
                            st->tensors[i].name);
            goto out;
        }
    }
out:
    free_tensors(all, n_all);
    free(shards);
    cJSON_Delete(root);
    return rc;
}

int eng_st_open(const char *dir, struct eng_st *st, struct sh_err *err)
{
    char path[4096];
    int rc;

    memset(st, 0, sizeof *st);
    if ((rc = sh_path_join(path, sizeof path, dir, "model.safetensors.index.json", err)))
        return rc;
    if (sh_path_exists(path)) {
        rc = open_sharded(dir, path, st, err);
    } else {
        if ((rc = sh_path_join(path, sizeof path, dir, "model.safetensors", err)))
            return rc;
        if (!sh_path_exists(path))
            return sh_err_set(err, SH_ENOTFOUND,
                              "%s: no model.safetensors or model.safetensors.index.json", dir);
        if (!(st->files = calloc(1, sizeof *st->files)))
            return sh_err_set(err, SH_ENOMEM, "out of memory");
        rc = map_and_parse(st, dir, "model.safetensors", &st->tensors, &st->n_tensors, err);
    }
    if (rc)
        eng_st_close(st);
    return rc;
}

void eng_st_close(struct eng_st *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_files; i++) {
        sh_unmap(&st->files[i].map);
        free(st->files[i].path);
    }
    free(st->files);
    free_tensors(st->tensors, st->n_tensors);
    memset(st, 0, sizeof *st);
}

static int cmp_find(const void *k, const void *t)
{
    return strcmp(k, ((const struct eng_tensor *)t)->name);
}

const struct eng_tensor *eng_st_find(const struct eng_st *st, const char *name)
{
    if (!st->n_tensors)
        return NULL;
    return bsearch(name, st->tensors, st->n_tensors, sizeof *st->tensors, cmp_find);
}

const char *eng_st_file_of(const struct eng_st *st, const struct eng_tensor *t)
{
    return t->file >= 0 && t->file < st->n_files ? st->files[t->file].path : "?";
}
