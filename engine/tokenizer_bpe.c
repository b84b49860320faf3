/* engine/tokenizer_bpe.c: the BPE model: the vocabulary and merge hash
 * tables and the merge loop for one pre-token.
 *
 * The merge loop is tokenizers' Word::merge_all (models/bpe/word.rs): the
 * symbols of a word form a doubly linked list, every adjacent pair that has a
 * merge goes into a min-heap ordered by (rank, position), and the lowest is
 * applied first; entries made stale by an earlier merge are recognised and
 * skipped when popped. That is O(n log n) per word, so a long word (a run of
 * 100k letters) costs no more than its length suggests.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/tokenizer_internal.h"

/* A symbol of the word being merged. len == 0 marks one merged away. */
struct tok_sym {
    int32_t id;
    int32_t prev; /* -1 at the start */
    int32_t next; /* -1 at the end */
    uint32_t len;
};

/* A candidate merge of the pair starting at symbol pos. */
struct tok_cand {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
};

uint64_t tok_hash(const void *data, size_t len)
{
    /* FNV-1a, then a final avalanche so the low bits (the slot) mix well. */
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static size_t table_cap(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap <<= 1;
    return cap;
}

int tok_strtab_build(struct eng_tokenizer *tok, struct sh_err *err)
{
    struct tok_strtab *t = &tok->vocab_tab;
    size_t cap = table_cap(tok->n_vocab);

    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        return sh_err_set(err, SH_ENOMEM, "vocabulary table: out of memory");
    t->mask = cap - 1;
    for (size_t id = 0; id < tok->n_ids; id++) {
        const struct tok_span *sp = &tok->vocab_str[id];
        const char *key;
        size_t i;

        if (sp->off == UINT32_MAX)
            continue;
        key = tok->vocab_arena + sp->off;
        i = (size_t)tok_hash(key, sp->len) & t->mask;
        while (t->slots[i]) {
            const struct tok_span *o = &tok->vocab_str[t->slots[i] - 1];
            if (o->len == sp->len && memcmp(tok->vocab_arena + o->off, key, sp->len) == 0)
                return sh_err_set(err, SH_EMALFORMED,
                                  "model.vocab: token \"%.*s\" listed twice (ids %u and %zu)",
                                  (int)(sp->len > 64 ? 64 : sp->len), key, t->slots[i] - 1, id);
            i = (i + 1) & t->mask;
        }
        t->slots[i] = (uint32_t)id + 1;
    }
    return 0;
}

int32_t tok_vocab_find(const struct eng_tokenizer *tok, const char *key, size_t len)
{
    const struct tok_strtab *t = &tok->vocab_tab;
    size_t i;

    if (!t->slots)
        return -1;
    i = (size_t)tok_hash(key, len) & t->mask;
    while (t->slots[i]) {
        const struct tok_span *o = &tok->vocab_str[t->slots[i] - 1];
        if (o->len == len && memcmp(tok->vocab_arena + o->off, key, len) == 0)
            return (int32_t)(t->slots[i] - 1);
        i = (i + 1) & t->mask;
    }
    return -1;
}

void tok_strtab_free(struct tok_strtab *t)
{
    free(t->slots);
    t->slots = NULL;
}

static size_t pair_slot(uint64_t key, size_t mask)
{
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ULL;
    key ^= key >> 29;
    return (size_t)key & mask;
}

int tok_mergetab_init(struct tok_mergetab *t, size_t n)
{
    size_t cap = table_cap(n);

    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->slots)
        return SH_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        t->slots[i].key = UINT64_MAX;
    t->mask = cap - 1;
    return 0;
}

void tok_mergetab_put(struct tok_mergetab *t, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = pair_slot(key, t->mask);

    while (t->slots[i].key != UINT64_MAX && t->slots[i].key != key)
        i = (i + 1) & t->mask;
    t->slots[i].key = key;
    t->slots[i].rank = rank;
    t->slots[i].id = id;
}

bool tok_mergetab_get(
    const struct tok_mergetab *t, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i;

    if (!t->slots)
        return false;
    i = pair_slot(key, t->mask);
    while (t->slots[i].key != UINT64_MAX) {
        if (t->slots[i].key == key) {
            *rank = t->slots[i].rank;
            *id = t->slots[i].id;
            return true;
        }
        i = (i + 1) & t->mask;
    }
    return false;
}

void tok_mergetab_free(struct tok_mergetab *t)
{
    free(t->slots);
    t->slots = NULL;
}

/* ---- the merge loop ------------------------------------------------------ */

static bool cand_less(const struct tok_cand *a, const struct tok_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct tok_cand *h, size_t *n, struct tok_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static struct tok_cand heap_pop(struct tok_cand *h, size_t *n)
{
    struct tok_cand top = h[0];
    struct tok_cand last = h[--(*n)];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct tok_cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (l + 1 < *n && cand_less(&h[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n)
        h[i] = last;
    return top;
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 64, bytes;
    void *p;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        if (!sh_mul_size(ncap, 2, &ncap))
            return SH_ETOOBIG;
    if (!sh_mul_size(ncap, elem, &bytes))
        return SH_ETOOBIG;
    p = realloc(*buf, bytes);
    if (!p)
        return SH_ENOMEM;
    *buf = p;
    *cap = ncap;
    return 0;
}

static int push_id(int32_t id, int32_t **ids, size_t *n, size_t *cap)
{
    int rc = grow((void **)ids, cap, *n + 1, sizeof **ids);
    if (rc)
        return rc;
    (*ids)[(*n)++] = id;
    return 0;
}

/* Appends a symbol (tokenizers' Word::add). */
static void sym_add(struct tok_sym *syms, size_t *ns, int32_t id, uint32_t len)
{
    size_t i = (*ns)++;
    syms[i].id = id;
    syms[i].len = len;
    syms[i].prev = i ? (int32_t)(i - 1) : -1;
    syms[i].next = -1;
    if (i)
        syms[i - 1].next = (int32_t)i;
}

static void push_pair(const struct eng_tokenizer *tok,
                      struct tok_cand *heap,
                      size_t *nh,
                      const struct tok_sym *syms,
                      int32_t pos)
{
    struct tok_cand c;
    int32_t next = syms[pos].next;

    if (next < 0)
        return;
    if (tok_mergetab_get(&tok->merges, syms[pos].id, syms[next].id, &c.rank, &c.id)) {
        c.pos = (uint32_t)pos;
        heap_push(heap, nh, c);
    }
}

static int fail_code(int rc, size_t n, struct sh_err *err)
{
    if (rc == SH_ENOMEM)
        return sh_err_set(err, rc, "BPE of a %zu-byte word: out of memory", n);
    return sh_err_set(err, rc, "BPE of a %zu-byte word: too big", n);
}

int tok_bpe_word(const struct eng_tokenizer *tok,
                 struct tok_bpe_work *w,
                 const uint8_t *s,
                 size_t n,
                 int32_t **ids,
                 size_t *n_ids,
                 size_t *cap_ids,
                 struct sh_err *err)
{
    size_t ns = 0, nh = 0, heap_need;
    uint32_t unk_len = 0; /* length of a pending unknown run, 0 = none */
    int rc;

    if (n == 0)
        return 0;
    if (n > INT32_MAX / 4)
        return sh_err_set(err, SH_ETOOBIG, "pre-token of %zu bytes is too long", n);

    /* ignore_merges (Llama 3): a word that is itself in the vocabulary is
     * that one token, whatever the merges would make of it. The vocabulary
     * spells bytes the byte-level way, so look the word up spelled so. */
    if (tok->ignore_merges) {
        size_t bl = 0;
        int32_t id;

        if ((rc = grow((void **)&w->blstr, &w->blstr_cap, n * 2, 1)))
            return fail_code(rc, n, err);
        for (size_t i = 0; i < n; i++) {
            uint32_t cp = tok_byte_to_cp(s[i]);
            if (cp < 0x80) {
                w->blstr[bl++] = (char)cp;
            } else {
                w->blstr[bl++] = (char)(0xC0 | cp >> 6);
                w->blstr[bl++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        id = tok_vocab_find(tok, w->blstr, bl);
        if (id >= 0) {
            if ((rc = push_id(id, ids, n_ids, cap_ids)))
                return fail_code(rc, n, err);
            return 0;
        }
    }

    /* One symbol per byte (tokenizers' merge_word: one per char of the
     * byte-level string). A byte the vocabulary lacks is dropped, or becomes
     * the unk token (runs fused when fuse_unk), as tokenizers does. */
    heap_need = 3 * n; /* n - 1 initial pairs, at most 2 more per merge */
    if ((rc = grow((void **)&w->syms, &w->syms_cap, n, sizeof *w->syms)) ||
        (rc = grow((void **)&w->heap, &w->heap_cap, heap_need, sizeof *w->heap)))
        return fail_code(rc, n, err);
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id >= 0) {
            if (unk_len) {
                sym_add(w->syms, &ns, tok->unk_id, unk_len);
                unk_len = 0;
            }
            sym_add(w->syms, &ns, id, 1);
        } else if (tok->unk_id >= 0) {
            if (unk_len && !tok->fuse_unk) {
                sym_add(w->syms, &ns, tok->unk_id, unk_len);
                unk_len = 0;
            }
            unk_len++;
        }
    }
    if (unk_len)
        sym_add(w->syms, &ns, tok->unk_id, unk_len);

    for (size_t i = 0; i + 1 < ns; i++)
        push_pair(tok, w->heap, &nh, w->syms, (int32_t)i);
    while (nh) {
        struct tok_cand top = heap_pop(w->heap, &nh);
        struct tok_sym *cur = &w->syms[top.pos];
        struct tok_sym *right;
        uint32_t rank;
        int32_t id, next;

        if (cur->len == 0 || cur->next < 0)
            continue;
        next = cur->next;
        right = &w->syms[next];
        /* A stale entry: the pair changed since it was pushed. */
        if (!tok_mergetab_get(&tok->merges, cur->id, right->id, &rank, &id) || id != top.id)
            continue;
        cur->id = top.id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0)
            w->syms[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0)
            push_pair(tok, w->heap, &nh, w->syms, cur->prev);
        push_pair(tok, w->heap, &nh, w->syms, (int32_t)top.pos);
    }

    for (size_t i = 0; i < ns; i++) {
        if (w->syms[i].len == 0)
            continue;
        if ((rc = push_id(w->syms[i].id, ids, n_ids, cap_ids)))
            return fail_code(rc, n, err);
    }
    return 0;
}

void tok_bpe_work_free(struct tok_bpe_work *w)
{
    free(w->syms);
    free(w->heap);
    free(w->blstr);
    memset(w, 0, sizeof *w);
}
