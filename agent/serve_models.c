/* agent/serve_models.c: which model folders the agent serves and what they
 * are called (--model, --models, the Hugging Face cache layout), with the
 * digest and time /api/tags shows. Reads folders and small files only: the
 * weights are the runner's business.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "agent/serve.h"
#include "common/file.h"
#include "common/util.h"

#define HF_PREFIX           "models--"
#define SAFETENSORS_HDR_MAX (100u << 20) /* as the engine's loader allows */

/* Characters api_model_resolve accepts in a name. */
static bool id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._:@+-/", c) != NULL;
}

/* The [start, end) range of path's component k from the end (0 = last),
 * ignoring trailing slashes; false when there are fewer. */
static bool component(const char *path, int k, const char **start, size_t *len)
{
    const char *end = path + strlen(path);

    while (end > path && end[-1] == '/')
        end--;
    for (;;) {
        const char *s = end;
        while (s > path && s[-1] != '/')
            s--;
        if (s == end)
            return false;
        if (k-- == 0) {
            *start = s;
            *len = (size_t)(end - s);
            return true;
        }
        end = s;
        while (end > path && end[-1] == '/')
            end--;
    }
}

int serve_model_id(const char *path, char out[SERVE_MAX_ID + 1], struct sh_err *err)
{
    const char *s, *snap, *repo;
    size_t n, nsnap, nrepo, w = 0;

    out[0] = '\0';
    if (!component(path, 0, &s, &n))
        return sh_err_set(err, SH_EINVAL, "%s: no folder name to name the model by", path);
    /* .../models--Org--Name/snapshots/<rev>: the repo id "Org/Name" (the
     * cache writes '/' as "--"). */
    if (component(path, 1, &snap, &nsnap) && nsnap == 9 && memcmp(snap, "snapshots", 9) == 0 &&
        component(path, 2, &repo, &nrepo) && nrepo > strlen(HF_PREFIX) &&
        memcmp(repo, HF_PREFIX, strlen(HF_PREFIX)) == 0) {
        const char *r = repo + strlen(HF_PREFIX), *e = repo + nrepo;
        while (r < e) {
            if (w >= SERVE_MAX_ID)
                return sh_err_set(err, SH_EINVAL, "%s: the model id is over %d bytes", path,
                                  SERVE_MAX_ID);
            if (e - r >= 2 && r[0] == '-' && r[1] == '-') {
                out[w++] = '/';
                r += 2;
            } else {
                out[w++] = *r++;
            }
        }
        out[w] = '\0';
    } else {
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return sh_err_set(err, SH_EINVAL, "%s: name the model folder itself, not . or ..",
                              path);
        if (n > SERVE_MAX_ID)
            return sh_err_set(err, SH_EINVAL, "%s: the folder name is over %d bytes", path,
                              SERVE_MAX_ID);
        memcpy(out, s, n);
        out[n] = '\0';
    }
    for (const char *c = out; *c; c++)
        if (!id_char_ok(*c))
            return sh_err_set(err, SH_EINVAL,
                              "%s: model id \"%s\" has a character clients cannot send "
                              "(allowed: letters, digits and ._:@+-/); rename the folder",
                              path, out);
    if (!out[0] || out[0] == '/')
        return sh_err_set(err, SH_EINVAL, "%s: bad model id \"%s\"", path, out);
    return 0;
}

static bool is_model_dir(const char *dir)
{
    char p[PATH_MAX];
    return sh_path_join(p, sizeof p, dir, "config.json", NULL) == 0 && sh_path_exists(p);
}

/* sha256 of the weights' index, else of model.safetensors' header (the
 * tensors' names, shapes and offsets). "" when neither can be read. */
static void digest_of(const char *dir, char hex[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char p[PATH_MAX];
    char *data = NULL;
    size_t len = 0;
    FILE *f;

    hex[0] = '\0';
    if (!sh_path_join(p, sizeof p, dir, "model.safetensors.index.json", NULL) &&
        !sh_read_file(p, 64u << 20, &data, &len, NULL)) {
        crypto_hash_sha256(h, (const unsigned char *)data, len);
    } else if (!sh_path_join(p, sizeof p, dir, "model.safetensors", NULL) && (f = fopen(p, "rb"))) {
        unsigned char n8[8];
        uint64_t n = 0;
        struct sh_cursor c;
        if (fread(n8, 1, 8, f) == 8) {
            sh_cursor_init(&c, n8, 8);
            n = sh_cursor_u64(&c);
        }
        if (n > 0 && n <= SAFETENSORS_HDR_MAX && (data = malloc(n)) && fread(data, 1, n, f) == n) {
            crypto_hash_sha256(h, (const unsigned char *)data, n);
            len = 1;
        }
        fclose(f);
        if (!len) {
            free(data);
            return;
        }
    } else {
        return;
    }
    free(data);
    sodium_bin2hex(hex, 65, h, sizeof h);
}

static int add(struct serve_model_dir **list, size_t *n, const char *dir, struct sh_err *err)
{
    struct serve_model_dir *d, *grown;
    struct stat st;
    char p[PATH_MAX];
    int rc;

    if (*n == SERVE_MAX_MODELS)
        return sh_err_set(err, SH_ETOOBIG, "more than %d models", SERVE_MAX_MODELS);
    if (!(grown = realloc(*list, (*n + 1) * sizeof **list)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    *list = grown;
    d = &grown[*n];
    memset(d, 0, sizeof *d);
    if ((rc = serve_model_id(dir, d->id, err)))
        return rc;
    for (size_t i = 0; i < *n; i++)
        if (strcasecmp(grown[i].id, d->id) == 0)
            return sh_err_set(err, SH_EEXIST, "two models are named \"%s\": %s and %s", d->id,
                              grown[i].dir, dir);
    if (!(d->dir = strdup(dir)))
        return sh_err_set(err, SH_ENOMEM, "out of memory");
    digest_of(dir, d->digest);
    if (!sh_path_join(p, sizeof p, dir, "config.json", NULL) && stat(p, &st) == 0)
        d->mtime = (int64_t)st.st_mtime;
    (*n)++;
    return 0;
}

/* The snapshot of an HF cache repo folder: refs/main's, else the newest
 * snapshot with a config.json. false when none. */
static bool hf_snapshot(const char *repo, char *out, size_t cap)
{
    char p[PATH_MAX], snaps[PATH_MAX], *ref = NULL;
    size_t len;
    time_t best = 0;
    DIR *d;
    struct dirent *e;
    bool found = false;

    if (sh_path_join(snaps, sizeof snaps, repo, "snapshots", NULL))
        return false;
    if (!sh_path_join(p, sizeof p, repo, "refs/main", NULL) &&
        !sh_read_file(p, 256, &ref, &len, NULL)) {
        while (len && (ref[len - 1] == '\n' || ref[len - 1] == '\r'))
            ref[--len] = '\0';
        found = len && !strchr(ref, '/') && !sh_path_join(out, cap, snaps, ref, NULL) &&
                is_model_dir(out);
        free(ref);
        if (found)
            return true;
    }
    if (!(d = opendir(snaps)))
        return false;
    while ((e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.' || sh_path_join(p, sizeof p, snaps, e->d_name, NULL) ||
            !is_model_dir(p) || stat(p, &st) != 0)
            continue;
        if (!found || st.st_mtime > best) {
            best = st.st_mtime;
            snprintf(out, cap, "%s", p);
            found = true;
        }
    }
    closedir(d);
    return found;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every model folder inside root (sorted by name, so ids are stable). */
static int scan_root(const char *root, struct serve_model_dir **list, size_t *n, struct sh_err *err)
{
    char *names[1024];
    size_t k = 0, before = *n;
    DIR *d = opendir(root);
    struct dirent *e;
    int rc = 0;

    if (!d)
        return sh_err_set(err, errno == ENOENT ? SH_ENOTFOUND : SH_EIO, "--models %s: %s", root,
                          strerror(errno));
    while ((e = readdir(d)) && k < sizeof names / sizeof names[0])
        if (e->d_name[0] != '.' && !(names[k++] = strdup(e->d_name))) {
            k--;
            rc = sh_err_set(err, SH_ENOMEM, "out of memory");
            break;
        }
    closedir(d);
    qsort(names, k, sizeof names[0], cmp_names);
    for (size_t i = 0; i < k && !rc; i++) {
        char p[PATH_MAX], snap[PATH_MAX];
        if (sh_path_join(p, sizeof p, root, names[i], NULL))
            continue;
        if (is_model_dir(p))
            rc = add(list, n, p, err);
        else if (strncmp(names[i], HF_PREFIX, strlen(HF_PREFIX)) == 0 &&
                 hf_snapshot(p, snap, sizeof snap))
            rc = add(list, n, snap, err);
    }
    for (size_t i = 0; i < k; i++)
        free(names[i]);
    if (!rc && *n == before)
        rc = sh_err_set(err, SH_ENOTFOUND,
                        "--models %s: no model folder in it (a folder with config.json, or a "
                        "Hugging Face cache's models--Org--Name)",
                        root);
    return rc;
}

int serve_find_models(const struct serve_opts *o,
                      const char *default_dir,
                      struct serve_model_dir **out,
                      size_t *n,
                      struct sh_err *err)
{
    struct serve_model_dir *list = NULL;
    size_t k = 0;
    int rc = 0;

    *out = NULL;
    *n = 0;
    if (o->none)
        return 0;
    for (size_t i = 0; i < o->n_model_dirs && !rc; i++) {
        if (!is_model_dir(o->model_dirs[i]))
            rc = sh_err_set(err, SH_ENOTFOUND, "--model %s: not a model folder (no config.json)",
                            o->model_dirs[i]);
        else
            rc = add(&list, &k, o->model_dirs[i], err);
    }
    for (size_t i = 0; i < o->n_models_roots && !rc; i++)
        rc = scan_root(o->models_roots[i], &list, &k, err);
    if (!rc && o->n_model_dirs == 0 && o->n_models_roots == 0) {
        if (!is_model_dir(default_dir))
            rc = sh_err_set(err, SH_ENOTFOUND, "the default model %s is not a model folder",
                            default_dir);
        else
            rc = add(&list, &k, default_dir, err);
    }
    if (rc) {
        serve_model_dirs_free(list, k);
        return rc;
    }
    *out = list;
    *n = k;
    return 0;
}

void serve_model_dirs_free(struct serve_model_dir *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        free(d[i].dir);
    free(d);
}
