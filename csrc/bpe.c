/* Tokenizer merge loops (llama.cpp's BPE and SPM algorithms) over a vocab
 * hash table. Python does the special-token partition and the pre-tokenizer
 * split; these functions run the per-word / per-fragment merges, which are
 * the hot part. The tables are read-only after construction, so one handle
 * may be used from several threads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "llmlite.h"

typedef struct {
    unsigned char *text;   /* token texts, concatenated */
    int64_t *off;          /* n + 1 offsets into text */
    float *score;          /* n scores (SPM merge priority) */
    int32_t n;
    int32_t *slots;        /* open addressing: token id or -1 */
    uint64_t mask;
    /* BPE merges: entry i is mtext[moff[i] .. moff[i+1]) = left + right, left being mleft[i] bytes */
    unsigned char *mtext;
    int64_t *moff;
    int32_t *mleft;
    int32_t nm;
    int32_t *mslots;       /* merge index (= rank) or -1 */
    uint64_t mmask;
    int32_t byte_id[256];  /* SPM byte fallback: <0xXX>, else the 1-byte string, else -1 */
    int32_t single_id[256];/* the 1-byte string's id, or -1 */
    unsigned char enc[256][2]; /* GPT-2 byte -> unicode char, as UTF-8 */
    unsigned char enc_len[256];
} tok_t;

#define FNV_OFF 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static inline uint64_t fnv(uint64_t h, const unsigned char *s, int64_t n) {
    for (int64_t i = 0; i < n; i++) { h ^= s[i]; h *= FNV_PRIME; }
    return h;
}
static inline uint64_t mix(uint64_t h) {
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    return h;
}

static int find_id(const tok_t *t, const unsigned char *s, int64_t n) {
    uint64_t i = mix(fnv(FNV_OFF, s, n)) & t->mask;
    for (;;) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        int64_t o = t->off[id];
        if (t->off[id + 1] - o == n && memcmp(t->text + o, s, (size_t)n) == 0) return id;
        i = (i + 1) & t->mask;
    }
}

static uint64_t pair_hash(const unsigned char *l, int64_t nl, const unsigned char *r, int64_t nr) {
    uint64_t h = fnv(FNV_OFF, l, nl);
    h ^= 0x1ff; h *= FNV_PRIME;  /* a separator outside the byte range */
    return mix(fnv(h, r, nr));
}

/* rank of the merge (left, right), or -1 */
static int find_merge(const tok_t *t, const unsigned char *l, int64_t nl, const unsigned char *r, int64_t nr) {
    if (!t->mslots) return -1;
    uint64_t i = pair_hash(l, nl, r, nr) & t->mmask;
    for (;;) {
        int32_t m = t->mslots[i];
        if (m < 0) return -1;
        const unsigned char *p = t->mtext + t->moff[m];
        if (t->mleft[m] == nl && t->moff[m + 1] - t->moff[m] == nl + nr &&
            memcmp(p, l, (size_t)nl) == 0 && memcmp(p + nl, r, (size_t)nr) == 0) return m;
        i = (i + 1) & t->mmask;
    }
}

static uint64_t table_size(int64_t n) {
    uint64_t s = 16;
    while (s < (uint64_t)n * 2 + 16) s <<= 1;
    return s;
}

void llm_tok_free(void *h) {
    tok_t *t = (tok_t *)h;
    if (!t) return;
    free(t->text); free(t->off); free(t->score); free(t->slots);
    free(t->mtext); free(t->moff); free(t->mleft); free(t->mslots);
    free(t);
}

void *llm_tok_new(long long n, const unsigned char *buf, const long long *offsets,
                  const long long *lengths, const float *scores) {
    if (n < 0 || n > 0x7fffffff || (n > 0 && (!buf || !offsets || !lengths))) return NULL;
    tok_t *t = (tok_t *)calloc(1, sizeof(tok_t));
    if (!t) return NULL;
    t->n = (int32_t)n;
    int64_t total = 0;
    for (long long i = 0; i < n; i++) {
        if (lengths[i] < 0 || offsets[i] < 0) { llm_tok_free(t); return NULL; }
        total += lengths[i];
    }
    t->text = (unsigned char *)malloc((size_t)total + 1);
    t->off = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n + 1));
    t->score = (float *)malloc(sizeof(float) * (size_t)(n + 1));
    uint64_t cap = table_size(n);
    t->slots = (int32_t *)malloc(sizeof(int32_t) * cap);
    if (!t->text || !t->off || !t->score || !t->slots) { llm_tok_free(t); return NULL; }
    t->mask = cap - 1;
    memset(t->slots, 0xff, sizeof(int32_t) * cap);
    int64_t pos = 0;
    for (long long i = 0; i < n; i++) {
        t->off[i] = pos;
        if (lengths[i]) memcpy(t->text + pos, buf + offsets[i], (size_t)lengths[i]);
        pos += lengths[i];
        t->score[i] = scores ? scores[i] : 0.0f;
    }
    t->off[n] = pos;
    /* insert in id order; a repeated text maps to its last id (as llama.cpp's map assignment) */
    for (int32_t id = 0; id < t->n; id++) {
        const unsigned char *s = t->text + t->off[id];
        int64_t len = t->off[id + 1] - t->off[id];
        uint64_t i = mix(fnv(FNV_OFF, s, len)) & t->mask;
        for (;;) {
            int32_t cur = t->slots[i];
            if (cur < 0) { t->slots[i] = id; break; }
            if (t->off[cur + 1] - t->off[cur] == len && memcmp(t->text + t->off[cur], s, (size_t)len) == 0) {
                t->slots[i] = id;
                break;
            }
            i = (i + 1) & t->mask;
        }
    }
    /* byte fallbacks */
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        unsigned char one = (unsigned char)b;
        unsigned char name[6] = {'<', '0', 'x', (unsigned char)hex[b >> 4], (unsigned char)hex[b & 15], '>'};
        t->single_id[b] = find_id(t, &one, 1);
        int id = find_id(t, name, 6);
        t->byte_id[b] = id >= 0 ? id : t->single_id[b];
    }
    /* GPT-2 bytes_to_unicode: printable bytes keep their code point, the
     * other 68 take U+0100.. in increasing byte order */
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        int cp = keep ? b : next++;
        if (cp < 0x80) { t->enc[b][0] = (unsigned char)cp; t->enc_len[b] = 1; }
        else {
            t->enc[b][0] = (unsigned char)(0xc0 | (cp >> 6));
            t->enc[b][1] = (unsigned char)(0x80 | (cp & 0x3f));
            t->enc_len[b] = 2;
        }
    }
    return t;
}

int llm_tok_set_merges(void *h, long long n, const unsigned char *buf, const long long *offsets,
                       const long long *lengths) {
    tok_t *t = (tok_t *)h;
    if (!t || n < 0 || n > 0x7fffffff || (n > 0 && (!buf || !offsets || !lengths))) return -1;
    free(t->mtext); free(t->moff); free(t->mleft); free(t->mslots);
    t->mtext = NULL; t->moff = NULL; t->mleft = NULL; t->mslots = NULL; t->nm = 0;
    int64_t total = 0;
    for (long long i = 0; i < n; i++) {
        if (lengths[i] < 0 || offsets[i] < 0) return -1;
        total += lengths[i];
    }
    uint64_t cap = table_size(n);
    t->mtext = (unsigned char *)malloc((size_t)total + 1);
    t->moff = (int64_t *)malloc(sizeof(int64_t) * (size_t)(n + 1));
    t->mleft = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n + 1));
    t->mslots = (int32_t *)malloc(sizeof(int32_t) * cap);
    if (!t->mtext || !t->moff || !t->mleft || !t->mslots) return -2;
    t->mmask = cap - 1;
    memset(t->mslots, 0xff, sizeof(int32_t) * cap);
    t->nm = (int32_t)n;
    int64_t pos = 0;
    for (long long i = 0; i < n; i++) {
        /* split at the first space at byte index >= 1; none -> ("", "") */
        const unsigned char *s = buf + offsets[i];
        int64_t len = lengths[i], sp = -1;
        for (int64_t j = 1; j < len; j++) if (s[j] == ' ') { sp = j; break; }
        t->moff[i] = pos;
        if (sp < 0) { t->mleft[i] = 0; continue; }
        memcpy(t->mtext + pos, s, (size_t)sp);
        memcpy(t->mtext + pos + sp, s + sp + 1, (size_t)(len - sp - 1));
        t->mleft[i] = (int32_t)sp;
        pos += len - 1;
    }
    t->moff[n] = pos;
    for (int32_t m = 0; m < t->nm; m++) {
        const unsigned char *p = t->mtext + t->moff[m];
        int64_t nl = t->mleft[m], nr = t->moff[m + 1] - t->moff[m] - nl;
        if (nl == 0 && nr == 0) continue;
        if (find_merge(t, p, nl, p + nl, nr) >= 0) continue;   /* a repeated pair keeps its first rank */
        uint64_t i = pair_hash(p, nl, p + nl, nr) & t->mmask;
        while (t->mslots[i] >= 0) i = (i + 1) & t->mmask;
        t->mslots[i] = m;
    }
    return 0;
}

int llm_tok_find(const void *h, const unsigned char *s, long long n) {
    const tok_t *t = (const tok_t *)h;
    if (!t || n < 0 || (n > 0 && !s)) return -1;
    return find_id(t, s, n);
}

/* ---- merge machinery shared by BPE and SPM ---- */

typedef struct { int32_t prev, next, start, len; } sym_t;
/* queue entry: smallest key first, then smallest left index */
typedef struct { double key; int32_t left, right, size; } qent_t;

typedef struct {
    sym_t *sym;
    qent_t *heap;
    unsigned char *enc;
    int64_t cap_sym, cap_heap, cap_enc;
    int64_t nheap;
} scratch_t;

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q; *cap = c;
    return 0;
}

static inline int qless(const qent_t *a, const qent_t *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static int qpush(scratch_t *s, double key, int32_t left, int32_t right, int32_t size) {
    if (grow((void **)&s->heap, &s->cap_heap, s->nheap + 1, sizeof(qent_t))) return -1;
    qent_t e = {key, left, right, size};
    int64_t i = s->nheap++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!qless(&e, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    return 0;
}

static qent_t qpop(scratch_t *s) {
    qent_t top = s->heap[0], last = s->heap[--s->nheap];
    int64_t i = 0, n = s->nheap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && qless(&s->heap[c + 1], &s->heap[c])) c++;
        if (!qless(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = last;
    return top;
}

/* BPE: queue the pair (l, r) if it is a merge */
static int bpe_try(const tok_t *t, scratch_t *s, const unsigned char *e, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    const sym_t *a = &s->sym[l], *b = &s->sym[r];
    int rank = find_merge(t, e + a->start, a->len, e + b->start, b->len);
    if (rank < 0) return 0;
    return qpush(s, (double)rank, l, r, a->len + b->len);
}

/* The merge loop both algorithms share: queue every adjacent pair the rule accepts,
 * then repeatedly merge the best queued pair that is still valid and queue the pairs
 * it forms with its neighbours. `try_pair` decides and scores a pair (BPE: merge rank;
 * SPM: token score). Returns -1 when out of memory. */
typedef int (*try_pair_fn)(const tok_t *t, scratch_t *s, const unsigned char *x, int32_t l, int32_t r);

static int merge_symbols(const tok_t *t, scratch_t *s, const unsigned char *x, int32_t n, try_pair_fn try_pair) {
    for (int32_t i = 1; i < n; i++)
        if (try_pair(t, s, x, i - 1, i)) return -1;
    while (s->nheap > 0) {
        qent_t q = qpop(s);
        sym_t *l = &s->sym[q.left], *r = &s->sym[q.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != q.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = q.left;
        if (try_pair(t, s, x, l->prev, q.left) || try_pair(t, s, x, q.left, l->next)) return -1;
    }
    return 0;
}

/* one word of raw bytes -> ids at out (room for 2 * n); returns the count or < 0 */
static int64_t bpe_word(const tok_t *t, scratch_t *s, const unsigned char *w, int64_t n,
                        int ignore_merges, int *out) {
    if (n == 0) return 0;
    if (grow((void **)&s->enc, &s->cap_enc, 2 * n, 1) || grow((void **)&s->sym, &s->cap_sym, n, sizeof(sym_t)))
        return -2;
    unsigned char *e = s->enc;
    int64_t ne = 0;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *c = t->enc[w[i]];
        s->sym[i].start = (int32_t)ne;
        s->sym[i].len = t->enc_len[w[i]];
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        e[ne++] = c[0];
        if (t->enc_len[w[i]] == 2) e[ne++] = c[1];
    }
    if (ignore_merges) {
        int id = find_id(t, e, ne);
        if (id >= 0) { out[0] = id; return 1; }
    }
    s->nheap = 0;
    if (merge_symbols(t, s, e, (int32_t)n, bpe_try)) return -2;
    int64_t k = 0;
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const sym_t *y = &s->sym[i];
        int id = find_id(t, e + y->start, y->len);
        if (id >= 0) { out[k++] = id; continue; }
        for (int32_t j = 0; j < y->len; j++) {
            int b = t->single_id[e[y->start + j]];
            if (b >= 0) out[k++] = b;
        }
    }
    return k;
}

/* SPM: queue the pair (l, r) if its text is a token */
static int spm_try(const tok_t *t, scratch_t *s, const unsigned char *x, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    const sym_t *a = &s->sym[l], *b = &s->sym[r];
    int id = find_id(t, x + a->start, a->len + b->len);
    if (id < 0) return 0;
    return qpush(s, -(double)t->score[id], l, r, a->len + b->len);
}

/* x's UTF-8 characters as the first symbols (llama.cpp's unicode_len_utf8 by the lead
 * byte, cut at the end); their count, or -2 out of memory */
static int32_t utf8_symbols(scratch_t *s, const unsigned char *x, int64_t n) {
    if (grow((void **)&s->sym, &s->cap_sym, n, sizeof(sym_t))) return -2;
    int32_t ns = 0;
    for (int64_t i = 0; i < n;) {
        unsigned c = x[i];
        int64_t len = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (len > n - i) len = n - i;
        s->sym[ns].start = (int32_t)i;
        s->sym[ns].len = (int32_t)len;
        s->sym[ns].prev = ns - 1;
        s->sym[ns].next = i + len < n ? ns + 1 : -1;
        ns++;
        i += len;
    }
    s->nheap = 0;
    return ns;
}

/* the merged symbols' ids at out: each symbol's token, or its bytes' <0xXX> tokens; a
 * byte without one: -3 (strict: SentencePiece's) or left out (Gemma 4's BPE, as llama.cpp) */
static int64_t emit_symbols(const tok_t *t, const scratch_t *s, const unsigned char *x, int strict, int *out) {
    int64_t k = 0;
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const sym_t *y = &s->sym[i];
        int id = find_id(t, x + y->start, y->len);
        if (id >= 0) { out[k++] = id; continue; }
        for (int32_t j = 0; j < y->len; j++) {
            int b = t->byte_id[x[y->start + j]];
            if (b >= 0) out[k++] = b;
            else if (strict) return -3;
        }
    }
    return k;
}

/* BPE over raw UTF-8 (Gemma 4's: spaces already escaped, no byte encoding): the
 * characters merged by rank. ids at out (room for n); count or < 0 */
static int64_t bpe_raw_word(const tok_t *t, scratch_t *s, const unsigned char *x, int64_t n, int *out) {
    if (n == 0) return 0;
    const int32_t ns = utf8_symbols(s, x, n);
    if (ns < 0 || merge_symbols(t, s, x, ns, bpe_try)) return -2;
    return emit_symbols(t, s, x, 0, out);
}

/* one fragment (spaces already escaped) -> ids at out (room for n); count or < 0 */
static int64_t spm_frag(const tok_t *t, scratch_t *s, const unsigned char *x, int64_t n, int *out) {
    if (n == 0) return 0;
    const int32_t ns = utf8_symbols(s, x, n);
    if (ns < 0 || merge_symbols(t, s, x, ns, spm_try)) return -2;
    return emit_symbols(t, s, x, 1, out);
}

static long long run_batch(const void *h, const unsigned char *buf, const long long *offs, long long nitems,
                           int mode, int ignore_merges, int *out, long long cap, long long *counts) {
    const tok_t *t = (const tok_t *)h;
    if (!t || nitems < 0 || !offs || (nitems > 0 && (!out || !counts))) return -1;
    scratch_t s;
    memset(&s, 0, sizeof s);
    long long k = 0, rc = 0;
    for (long long i = 0; i < nitems; i++) {
        long long a = offs[i], b = offs[i + 1];
        if (a < 0 || b < a || (b > a && !buf) || b - a > 0x3fffffff) { rc = -1; break; }
        long long room = mode == 1 ? 2 * (b - a) : (b - a);
        if (cap - k < room) { rc = -1; break; }
        int64_t m = mode == 1 ? bpe_word(t, &s, buf + a, b - a, ignore_merges, out + k)
                    : mode == 2 ? bpe_raw_word(t, &s, buf + a, b - a, out + k)
                    : spm_frag(t, &s, buf + a, b - a, out + k);
        if (m < 0) { rc = m; break; }
        counts[i] = m;
        k += m;
    }
    free(s.sym); free(s.heap); free(s.enc);
    return rc < 0 ? rc : k;
}

long long llm_tok_bpe(const void *h, const unsigned char *buf, const long long *offs, long long nwords,
                      int ignore_merges, int *out, long long cap, long long *counts) {
    return run_batch(h, buf, offs, nwords, 1, ignore_merges, out, cap, counts);
}

long long llm_tok_bpe_raw(const void *h, const unsigned char *buf, const long long *offs, long long nwords,
                          int *out, long long cap, long long *counts) {
    return run_batch(h, buf, offs, nwords, 2, 0, out, cap, counts);
}

long long llm_tok_spm(const void *h, const unsigned char *buf, const long long *offs, long long nfrags,
                      int *out, long long cap, long long *counts) {
    return run_batch(h, buf, offs, nfrags, 0, 0, out, cap, counts);
}
