/* engine/kern_q_dot.h: the Q4/Q8 decode products on the interleaved
 * layout (kern_avx2_q.c), compiled twice: by kern_avx2_q.c for AVX2 and by
 * kern_avx512_q.c with AVX-512 and VNNI as well (only for CPUs that have
 * them), each defining KERN_Q_DOT_ENTRY first as the name of its entry
 * point. Only those two files may include it.
 *
 * With AVX-512 (BW, VNNI), vpdpbusd multiplies 4 bytes of weights with 4
 * bytes of codes per 32-bit lane, 64 multiply-adds an instruction.
 *  - 16-bit codes: eng_avx512_prep_q splits each into two signed bytes,
 *    X = 256 * H + L, laid out as two planes; a batch's lanes sum the
 *    weights against each plane, and 256 * H sum + L sum is the integer
 *    vpmaddwd's pairs add up to (batch_split_512). Per 64 weights: Q4 two
 *    multiplies, a shift and a mask (vpdpwssd on nibbles widened to 16
 *    bits took 2, 2 and 2); Q8 its bytes as they are, two 256-bit
 *    multiplies per 32 (vpmaddwd took 6 instructions; batch_split_512 says
 *    why not 512-bit).
 *  - 8-bit codes (Q4): the block's 32 bytes in both halves of a register,
 *    one shift puts the low nibbles in one half and the high in the other
 *    (batch_i8_512), which meet the layout of eng_avx2_prep_q.
 * The sums are the same integers in another order, so the results are
 * bit-identical to the AVX2 build's. A short batch (a row's or a flat
 * matrix's last) with 8-bit codes runs the AVX2 code in both builds.
 * bench_kernels, 1 thread, best of 20 rounds over a 1 MiB matrix (from the
 * caches), G weights/s, vpdpwssd -> split bytes: Q4 4864 columns 81 ->
 * 88, Q8 67 -> 78 (64 with the 256-bit Q8 of since). (The flat path's
 * figures moved with dot_rows_flat's loop, below.)
 *
 * Software prefetch. On a machine whose single core reads 38 GB/s (AMD
 * EPYC with AVX-512, 2026-11-23), the hardware prefetcher alone kept the
 * Q4 kernel at 44-46% of the read bandwidth at 896 columns and Q8 at
 * 66-68%: perf put the stalls on the weights' loads and, as much, on the
 * scales' and biases' (streams of 16 bytes a batch). So every batch
 * prefetches its scales and biases SB_AHEAD bytes ahead, and Q4 batches
 * their weights WEIGHTS_AHEAD bytes ahead (bench_kernels, 1 thread, 896
 * columns, medians of 3 alternated runs, kernel rate / read bandwidth: Q4
 * 46% -> 53% with the scales' prefetch, 68-71% with the weights' too at 2
 * to 8 KiB ahead (58% at 512 bytes); 4864 columns 70% -> 82%. Q8: 66% ->
 * 80% with the scales' alone, 63% with the weights' too, so Q8 left its
 * weights to the hardware.) Since the split codes and dot_rows_flat's
 * loop, Q8 prefetches its weights too: AVX-512 build, 1 thread, 256 MiB,
 * 2 runs each, 896 columns 78% -> 86-89%, 4864 columns 80% -> 88-93%; the
 * AVX2 build on the same machine (SHOAL_KERNELS=avx2), 3 alternated runs,
 * 896 columns 75-81% -> 88-91%, 2048 92-98% -> 97-100%, 8192 42-76% ->
 * 90-102%.
 */
#define SB_AHEAD      256
#define WEIGHTS_AHEAD 4096

/* Lanes per piece of rows in dot_rows_flat, for each of its two halves (a
 * flat matrix's rows have fewer groups than FLAT_MAX_GROUPS, kern_avx2_q.c). */
#define FLAT_BUF 2048

/* Q4, one block of 64 codes: acc (i32) += code * X. */
INLINE __m256i block_q4(__m256i v, const int16_t *x, __m256i acc)
{
    const __m256i m = _mm256_set1_epi16(15);
    __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m), LOADU(x));
    __m256i p1 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), LOADU(x + 16));
    __m256i p2 = _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 8), m), LOADU(x + 32));
    __m256i p3 = _mm256_madd_epi16(_mm256_srli_epi16(v, 12), LOADU(x + 48));
    return _mm256_add_epi32(acc,
                            _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
}

/* Q8, one block of 32 codes: acc (i32) += code * X. */
INLINE __m256i block_q8(__m256i v, const int16_t *x, __m256i acc)
{
    const __m256i m = _mm256_set1_epi16(0xff);
    __m256i p0 = _mm256_madd_epi16(_mm256_and_si256(v, m), LOADU(x));
    __m256i p1 = _mm256_madd_epi16(_mm256_srli_epi16(v, 8), LOADU(x + 16));
    return _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
}

/* Q4 with 8-bit codes, four blocks of 64 codes from bp (a batch of n
 * groups) and x8: acc (i32) += code * X. */
INLINE __m256i blocks4_q4_i8(const uint8_t *bp, int n, const int8_t *x8, __m256i acc)
{
    const __m256i m = _mm256_set1_epi8(15);
    __m256i s16 = _mm256_setzero_si256();

    for (int k = 0; k < 4; k++) {
        __m256i v = LOADU(bp + 4 * n * k);
        __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m), LOADU(x8 + 64 * k));
        __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m),
                                          LOADU(x8 + 64 * k + 32));
        s16 = _mm256_add_epi16(s16, _mm256_add_epi16(lo, hi));
    }
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define KERN_Q_512 1

#define LOADU512(p) _mm512_loadu_si512((const void *)(p))

/* The 32 bytes of a Q4 block at p as 64 codes, one a byte: their low
 * nibbles in the low 256 bits, their high nibbles in the high 256 (the
 * block in both halves, shifted by 0 | 4 per 16-bit lane, masked). */
INLINE __m512i nibbles_512(const uint8_t *p)
{
    const __m512i s = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(4), 1);

    return _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(LOADU(p)), s),
                            _mm512_set1_epi8(15));
}

/* The group sums (i32) of a full batch: the low and the high halves of c. */
INLINE __m256i halves_sum(__m512i c)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
}

/* Q4 with 8-bit codes, a full batch of bytes against 64 bytes of codes
 * per block (x + 64 j): the low | high nibbles of each block's bytes meet
 * its even | odd elements' codes (vpdpbusd); four blocks a turn. */
INLINE __m256i batch_i8_512(const uint8_t *bp, const int8_t *x, int blocks)
{
    __m512i c[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                    _mm512_setzero_si512()};

#pragma GCC unroll 16
    for (int j = 0; j < blocks; j++)
        c[j % 4] = _mm512_dpbusd_epi32(c[j % 4], nibbles_512(bp + 32 * j), LOADU512(x + 64 * j));
    return halves_sum(_mm512_add_epi32(_mm512_add_epi32(c[0], c[1]), _mm512_add_epi32(c[2], c[3])));
}

/* 16-bit codes split into bytes, X = 256 * H + L (eng_avx512_prep_q: the
 * batch's plane of L at x, of H at x + 8 * gs), a batch of n groups (a
 * constant after inlining; n < 8 at the end of a row or of a flat
 * matrix): vpdpbusd multiplies 4 bytes of weights with 4 of L, and of H,
 * per 32-bit lane, and each lane's sum is 256 * (H sum) + (L sum), the
 * same integer vpmaddwd's pairs add up to (no term wraps: |H sum| and |L
 * sum| are at most 128 * 255 * 128). Per 64 weights that is 2 multiplies
 * of 512 bits (Q8: 4 of 256, below) and, for Q4, a shift and a mask,
 * against vpdpwssd's 2, 2 and 2.
 *  - Q4: block j (32 bytes at bp + 4 n j) in both halves of a register,
 *    shifted by 0 | 4 and masked: its low | high nibbles, which meet the
 *    64 bytes of codes at x + 64 j (the even | odd elements: group_quads).
 *  - Q8: block j's 32 bytes meet the 32 bytes at x + 32 j as they are, in
 *    256-bit registers. 64-byte loads (blocks j, j + 1 in one register)
 *    ran faster from the caches but streamed worse from memory, on a core
 *    of AMD EPYC (bench_kernels q8, 1 thread, 256 MiB, kernel rate over
 *    read bandwidth, means of 4 alternated runs, 64-byte loads -> these:
 *    896 columns 89.8% -> 90.8%, 2048 92% -> 95.5%, 8192 84.3% -> 91.5%;
 *    from the caches, 4864 columns, 73-74 -> 64 G weights/s; 2 threads
 *    equal, 98-102%). Two accumulators per plane: one, 59 G weights/s from
 *    the caches. */
INLINE __m256i batch_split_512(const uint8_t *bp, const int8_t *x, enum eng_dtype dt, int gs, int n)
{
    const int8_t *xh = x + 8 * gs;
    __m256i l, h;

    if (dt == ENG_DT_Q4) {
        __m512i lo[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}, hi[2] = {lo[0], lo[0]};
#pragma GCC unroll 16
        for (int j = 0; j < gs / 8; j++) {
            __m512i a = nibbles_512(bp + 4 * n * j);
            lo[j % 2] = _mm512_dpbusd_epi32(lo[j % 2], a, LOADU512(x + 64 * j));
            hi[j % 2] = _mm512_dpbusd_epi32(hi[j % 2], a, LOADU512(xh + 64 * j));
        }
        l = halves_sum(_mm512_add_epi32(lo[0], lo[1]));
        h = halves_sum(_mm512_add_epi32(hi[0], hi[1]));
    } else {
        __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, hi[2] = {lo[0], lo[0]};
#pragma GCC unroll 16
        for (int j = 0; j < gs / 4; j++) {
            __m256i v = LOADU(bp + 4 * n * j);
            lo[j % 2] = _mm256_dpbusd_epi32(lo[j % 2], v, LOADU(x + 32 * j));
            hi[j % 2] = _mm256_dpbusd_epi32(hi[j % 2], v, LOADU(xh + 32 * j));
        }
        l = _mm256_add_epi32(lo[0], lo[1]);
        h = _mm256_add_epi32(hi[0], hi[1]);
    }
    return _mm256_add_epi32(_mm256_slli_epi32(h, 8), l);
}
#endif

/* The group sums of one batch (lane m: group m) with codes of the given
 * bits at x, in two accumulators so that the dependency chain of the adds
 * is half as long. */
INLINE __m256
batch_sums(const uint8_t *bp, const void *xv, enum eng_dtype dt, int gs, int n, int bits)
{
    const int16_t *x = xv;
    __m256i a = _mm256_setzero_si256(), b = a;

#if defined(KERN_Q_512)
    if (bits == 16)
        return _mm256_cvtepi32_ps(batch_split_512(bp, xv, dt, gs, n));
    if (n == 8)
        return _mm256_cvtepi32_ps(batch_i8_512(bp, xv, gs / 8));
#endif

    /* (not unrolled further: gcc then hoists the loads and shifts of
     * several blocks and spills them to the stack) */
    if (bits == 8) {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 8; j += 4)
            a = blocks4_q4_i8(bp + 4 * n * j, n, (const int8_t *)xv + j * 64, a);
    } else if (dt == ENG_DT_Q4) {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 8; j += 2) {
            a = block_q4(LOADU(bp + 4 * n * j), x + j * 64, a);
            b = block_q4(LOADU(bp + 4 * n * (j + 1)), x + (j + 1) * 64, b);
        }
    } else {
#pragma GCC unroll 1
        for (int j = 0; j < gs / 4; j += 2) {
            a = block_q8(LOADU(bp + 4 * n * j), x + j * 32, a);
            b = block_q8(LOADU(bp + 4 * n * (j + 1)), x + (j + 1) * 32, b);
        }
    }
    return _mm256_cvtepi32_ps(_mm256_add_epi32(a, b));
}

/* Scales or biases of groups [g, g + n) as floats (missing lanes 0). A
 * short batch (the end of a row) reads a whole vector when the tensor
 * continues for 8 more values (over_ok) and masks the extra lanes; the
 * last rows copy their few values instead. */
INLINE __m256 load_sb(enum eng_dtype dt, const uint8_t *row, int64_t g, int n, bool over_ok)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    const uint8_t *p = row + (size_t)g * es;
    uint8_t tmp[32] = {0};
    __m256 v;

    if (n < 8 && !over_ok) {
        memcpy(tmp, p, (size_t)n * es);
        p = tmp;
    }
    v = dt == ENG_DT_F32 ? LOADUF(p) : dt == ENG_DT_BF16 ? load8_bf16(p) : load8_f16(p);
    if (n < 8 && over_ok) {
        __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        v = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes)));
    }
    return v;
}

/* acc += one batch of n groups (n a constant after inlining) at bp,
 * meeting the codes x and, per lane, d and s: sum * (scale * d) + bias * s,
 * scales and biases (of dtype sbt) of groups [g, g + n) read from sc and
 * bi. */
INLINE __m256 batch(enum eng_dtype sbt,
                    const uint8_t *bp,
                    const uint8_t *x,
                    const float *d,
                    const float *s,
                    const uint8_t *sc,
                    const uint8_t *bi,
                    int64_t g,
                    int n,
                    enum eng_dtype dt,
                    int gs,
                    int bits,
                    bool over_ok,
                    __m256 acc)
{
    size_t es = sbt == ENG_DT_F32 ? 4 : 2;
    __m256 f, scale;

    /* (addresses as integers: past a matrix's end they point nowhere, and
     * a prefetch never faults) */
    _mm_prefetch((const char *)((uintptr_t)sc + (size_t)g * es + SB_AHEAD), _MM_HINT_T0);
    _mm_prefetch((const char *)((uintptr_t)bi + (size_t)g * es + SB_AHEAD), _MM_HINT_T0);
    for (int i = 0; i < n * (dt == ENG_DT_Q4 ? gs / 2 : gs); i += 64)
        _mm_prefetch((const char *)((uintptr_t)bp + WEIGHTS_AHEAD + (size_t)i), _MM_HINT_T0);
    f = batch_sums(bp, x, dt, gs, n, bits);
    scale = _mm256_mul_ps(load_sb(sbt, sc, g, n, over_ok), LOADUF(d));

    acc = _mm256_fmadd_ps(f, scale, acc);
    return _mm256_fmadd_ps(load_sb(sbt, bi, g, n, over_ok), LOADUF(s), acc);
}

/* Row k's batch at group g0 (per-row layout); codes of bits / 8 bytes. */
#define ROW_BATCH(K, N, OVER_OK)                                                                   \
    batch(sbt, row[K] + g0 * (dt == ENG_DT_Q4 ? gs / 2 : gs),                                      \
          (const uint8_t *)xq->q + g0 * gs * bits / 8, xq->d + g0, xq->s + g0, sc[K], bi[K], g0,   \
          N, dt, gs, bits, OVER_OK, acc[K])

/* One specialization per (dtype, group size, code bits, dtype of the
 * scales): inlined, the compiler folds the branches on them, and on the
 * last batch's group count, into straight-line code. Row i of each half of
 * the range go together, batch by batch (two streams: kern_avx2.h). */
INLINE void dot_rows_impl(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs,
                          int bits,
                          enum eng_dtype sbt)
{
    int64_t ng = w->cols / gs, half = (r1 - r0 + 1) / 2;

    for (int64_t i = 0; i < half; i++) {
        int64_t r[2] = {r0 + i, r0 + half + i}, g0 = 0;
        int ns = r[1] < r1 ? 2 : 1;
        const uint8_t *row[2], *sc[2], *bi[2];
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int k = 0; k < ns; k++) {
            row[k] = (const uint8_t *)w->data + (size_t)r[k] * w->row_stride;
            sc[k] = (const uint8_t *)w->scales + (size_t)r[k] * w->sb_stride;
            bi[k] = (const uint8_t *)w->biases + (size_t)r[k] * w->sb_stride;
        }
        for (; g0 + 8 <= ng; g0 += 8) {
            acc[0] = ROW_BATCH(0, 8, false);
            if (ns == 2)
                acc[1] = ROW_BATCH(1, 8, false);
        }
        for (int k = 0; k < ns; k++) {
            /* a full vector from the last batch's first group stays in the tensor */
            bool over_ok = (w->rows - r[k] - 1) * ng >= 8;
            switch (ng - g0) {
#define TAIL(N)                                                                                    \
    case N:                                                                                        \
        acc[k] = ROW_BATCH(k, N, over_ok);                                                         \
        break;
                TAIL(1)
                TAIL(2)
                TAIL(3)
                TAIL(4)
                TAIL(5)
                TAIL(6)
                TAIL(7)
#undef TAIL
            default:
                break;
            }
            y[r[k]] = hsum_ps(acc[k]);
        }
    }
}

#undef ROW_BATCH

/* The sum of n (1 <= n <= FLAT_MAX_GROUPS) consecutive floats, in an order
 * that depends on n alone (not on where they start). */
static inline float row_sum(const float *v, int64_t n)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;

    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_ps(acc, LOADUF(v + i));
    if (i < n) {
        __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), lanes);
        acc = _mm256_add_ps(acc, _mm256_and_ps(LOADUF(v + i), _mm256_castsi256_ps(keep)));
    }
    return hsum_ps(acc);
}

/* A flat matrix (eng_mat.flat): the batches covering rows [r0, r1), each
 * batch's 8 lane results (sum * scale * d + bias * s, lane by lane) into a
 * buffer, then each row's sum over its lanes. A row's result depends only
 * on its own lanes, whatever the range: the threads' shares give the same
 * bits as one call. The batches only read the ENG_REPACK_PAD past the
 * matrix's last row, whose loads can run past the data (a short last
 * batch, as in the per-row layout).
 * The two streams (kern_avx2.h) are the range's halves, each walked in
 * pieces of rows that fit its buffer, piece k of both halves together.
 * Two streams within each piece instead (about 135 KiB of Q8 at 896
 * columns) let the prefetcher start over at every piece: bench_kernels q8
 * on 1 thread, means of 12 alternated rounds, kernel rate over read
 * bandwidth 0.84 -> 0.88 at 896 columns, 0.70 -> 0.75 at 4864. */
/* Flat batch b (at bp), meeting the activation batch p of the period. */
#define FLAT_BATCH(N)                                                                              \
    batch(sbt, bp, (const uint8_t *)xq->q + p * 8 * gs * bits / 8, xq->dl + p * 8, xq->sl + p * 8, \
          w->scales, w->biases, b * 8, N, dt, gs, bits, false, _mm256_set1_ps(-0.0f))

INLINE void dot_rows_flat(const struct eng_mat *w,
                          const struct eng_xq *xq,
                          float *y,
                          int64_t r0,
                          int64_t r1,
                          enum eng_dtype dt,
                          int gs,
                          int bits,
                          enum eng_dtype sbt)
{
    int64_t ng = w->cols / gs, total = w->rows * ng, period = lane_batches(w);
    int64_t G = dt == ENG_DT_Q4 ? gs / 2 : gs, chunk = (FLAT_BUF - 16) / ng;
    int64_t mid = r0 + (r1 - r0 + 1) / 2, lo[2] = {r0, mid}, hi[2] = {mid, r1};
    const uint8_t *data = w->data;
    float buf[2][FLAT_BUF];

    for (int64_t k0 = 0; r0 + k0 < mid; k0 += chunk) {
        int64_t rc[2], re[2], b0[2], nb[2], nfull[2], pat[2], nb_max;
        for (int h = 0; h < 2; h++) {
            rc[h] = lo[h] + k0;
            re[h] = rc[h] + chunk < hi[h] ? rc[h] + chunk : hi[h];
            b0[h] = rc[h] * ng / 8;
            nb[h] = rc[h] < re[h] ? (re[h] * ng + 7) / 8 - b0[h] : 0;
            /* only the matrix's last batch can be short */
            nfull[h] = total / 8 - b0[h] < nb[h] ? total / 8 - b0[h] : nb[h];
            pat[h] = b0[h] % period;
        }
        nb_max = nb[0] > nb[1] ? nb[0] : nb[1];
        /* Batch i of each half's piece in turn. Each half counts its place
         * in the activations' period along (a division per batch cost
         * about 3% of the Q4 kernel, best of 20 cache-resident rounds).
         * While both halves have full batches, in a loop of their own with
         * the halves spelled out: gcc keeps pat[h] and b0[h] in memory in
         * the general loop below (bench_kernels 896 columns, 1 thread,
         * best of 20 rounds from the caches, G weights/s: Q4 53 -> 73, Q4
         * with 8-bit codes 71 -> 104, Q8 46 -> 66; Q4 over 256 MiB, kernel
         * rate over read bandwidth 70% -> 94%. The AVX2 build on the same
         * machine, SHOAL_KERNELS=avx2, 3 alternated runs: Q4 47-48 -> 57
         * from the caches, 62-67% -> 75-76% over 256 MiB; Q8 75-82% ->
         * 82-83%). */
        int64_t both = nfull[0] < nfull[1] ? nfull[0] : nfull[1], i = 0, p0 = pat[0], p1 = pat[1];
        for (; i < both; i++) {
            int64_t b = b0[0] + i, p = p0;
            const uint8_t *bp = data + b * 8 * G;
            _mm256_storeu_ps(buf[0] + i * 8, FLAT_BATCH(8));
            b = b0[1] + i;
            p = p1;
            bp = data + b * 8 * G;
            _mm256_storeu_ps(buf[1] + i * 8, FLAT_BATCH(8));
            p0 = p0 + 1 == period ? 0 : p0 + 1;
            p1 = p1 + 1 == period ? 0 : p1 + 1;
        }
        pat[0] = p0;
        pat[1] = p1;
        for (; i < nb_max; i++) {
            for (int h = 0; h < 2; h++) {
                int64_t b = b0[h] + i, p = pat[h];
                const uint8_t *bp = data + b * 8 * G;
                __m256 c;
                /* Lane by lane from -0 (so that the first FMA rounds as a
                 * product alone); a full batch's count spelled out as the
                 * constant 8, which the inlined code folds. */
                if (i < nfull[h])
                    c = FLAT_BATCH(8);
                else if (i < nb[h])
                    c = FLAT_BATCH((int)(total - b * 8));
                else
                    continue;
                _mm256_storeu_ps(buf[h] + i * 8, c);
                pat[h] = p + 1 == period ? 0 : p + 1;
            }
        }
        for (int h = 0; h < 2; h++)
            for (int64_t r = rc[h]; r < re[h]; r++)
                y[r] = row_sum(buf[h] + (r * ng - b0[h] * 8), ng);
    }
}

#undef FLAT_BATCH

/* Each specialization also per dtype of the scales and biases: a branch on
 * it at every batch cost about 6% of the Q4 kernel (best of 20
 * cache-resident rounds at 896 columns, 33.7 -> 36.0 G weights/s). */
INLINE void dot_rows_any(const struct eng_mat *w,
                         const struct eng_xq *xq,
                         float *y,
                         int64_t r0,
                         int64_t r1,
                         enum eng_dtype dt,
                         int gs,
                         int bits,
                         enum eng_dtype sbt)
{
    if (w->flat)
        dot_rows_flat(w, xq, y, r0, r1, dt, gs, bits, sbt);
    else
        dot_rows_impl(w, xq, y, r0, r1, dt, gs, bits, sbt);
}

#define DEFINE_DOT(NAME, DT, GS, BITS)                                                             \
    static void NAME(const struct eng_mat *w, const struct eng_xq *xq, float *y, int64_t r0,       \
                     int64_t r1)                                                                   \
    {                                                                                              \
        if (w->sb_dtype == ENG_DT_BF16)                                                            \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_BF16);                    \
        else if (w->sb_dtype == ENG_DT_F32)                                                        \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_F32);                     \
        else                                                                                       \
            dot_rows_any(w, xq, y, r0, r1, ENG_DT_##DT, GS, BITS, ENG_DT_F16);                     \
    }

DEFINE_DOT(dot_q4_32, Q4, 32, 16)
DEFINE_DOT(dot_q4_64, Q4, 64, 16)
DEFINE_DOT(dot_q4_128, Q4, 128, 16)
DEFINE_DOT(dot_q8_32, Q8, 32, 16)
DEFINE_DOT(dot_q8_64, Q8, 64, 16)
DEFINE_DOT(dot_q8_128, Q8, 128, 16)
DEFINE_DOT(dot_q4i8_32, Q4, 32, 8)
DEFINE_DOT(dot_q4i8_64, Q4, 64, 8)
DEFINE_DOT(dot_q4i8_128, Q4, 128, 8)

void KERN_Q_DOT_ENTRY(const struct eng_mat *w, const void *xp, float *y, int64_t r0, int64_t r1)
{
    static void (*const fns[3][3])(const struct eng_mat *, const struct eng_xq *, float *, int64_t,
                                   int64_t) = {
        {dot_q4_32, dot_q4_64, dot_q4_128},
        {dot_q8_32, dot_q8_64, dot_q8_128},
        {dot_q4i8_32, dot_q4i8_64, dot_q4i8_128},
    };
    const struct eng_xq *xq = xp;
    int kind = w->dtype == ENG_DT_Q8 ? 1 : xq->bits == 8 ? 2 : 0;
    int gi = w->group_size == 32 ? 0 : w->group_size == 64 ? 1 : 2;

    fns[kind][gi](w, xp, y, r0, r1);
}
