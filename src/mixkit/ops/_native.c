/* Optional C kernels behind the CPU box and mask ops of mixkit.ops._fast (issue 6).
 *
 * One pass per sample over contiguous (B, C, H, W) tensors of 1, 2, 4 or 8-byte elements:
 * the pixels outside the box are copied from the sample itself (skipped in place), the box
 * pixels come from the source sample -- as they lie (CutMix), resized by nearest neighbour
 * (ResizeMix, RecursiveMix) or a constant (Cutout); a mask op (ClassMix, FMix) selects
 * pixel by pixel with a (B, H, W) bool mask instead of a box. Values are only moved, never
 * computed, so the result is bit-identical to the torch reference whatever the dtype. The one
 * computing kernel, MixUp (blend_sample), follows the torch reference operation by operation:
 * float32 / float64 images the lerp formula with every product and sum rounded, uint8 images
 * the float32 formula rounded to an integer. Both are compared byte for byte with the torch
 * paths in tests/test_fastpaths.py.
 *
 * Large outputs (g->stream, set by the caller for an out-of-place batch of at least
 * _fast.STREAM_BYTES) are written with non-temporal stores: each row is composed in a small
 * buffer that stays in L1 and streamed to memory without first reading the destination
 * lines (a normal store reads each line before writing it), while the own and source pieces
 * of the rows a few rows ahead are prefetched -- the box splits each row into pieces too
 * short for the hardware prefetcher. On a 2-core EPYC, 64x3x224x224 float32 into a
 * preallocated batch (median of 8 interleaved rounds): per-sample CutMix 4.6 ms streamed vs
 * 6.0 ms with plain stores, a plain copy_ of the batch 4.4 ms (MixUp: blend_stream).
 *
 * The nearest source index is the float32 formula of F.interpolate(mode="nearest"), as in
 * mixkit.ops._fast.resize_axes: min(floor(i * (float)in / (float)out), in - 1); the product
 * is >= 0, so the integer conversion's truncation is that floor (no libm call per index).
 *
 * In place with a partner from the same batch, the samples are visited along the cycles of
 * perm (each one reads a partner not yet overwritten); only each cycle's first sample is
 * saved, into a one-sample scratch buffer the caller passes. A perm that is not a
 * permutation (a repeated partner) reads from a full copy of the batch instead. A batch can
 * be split between POSIX threads (the caller's `threads`; see run()).
 *
 * One more function, targets(), mixes the one-hot (smoothed) targets of (B,) class ids in
 * one call: the label side of a small batch, where a dozen torch ops cost more than the pixels.
 *
 * Pointers arrive as integers (torch data_ptr()); the Python side checks devices, dtypes,
 * shapes, contiguity and overlaps. perm and boxes are range-checked here, before any write.
 * The GIL is released while the kernels run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_STREAM 1
#endif

typedef unsigned char byte;

/* Rows up to this many bytes are composed in a stack buffer and streamed (g->stream). */
#define ROW_BUF 16384
/* Prefetch distance of the streamed box rows, in rows (a prototype of box_sample_stream,
 * 64x3x224x224 float32 with a half-area box, on a 2-core EPYC: 2 rows 3.3 ms, 4 rows 2.8 ms,
 * 8 rows 3.2 ms, 16 rows 3.7 ms). */
#define AHEAD 4
/* Prefetch distance of the streamed float MixUp, in bytes, on both sources (an interleaved
 * A/B of 64x3x224x224 float32 into a preallocated batch on a 2-core EPYC, medians of 9
 * rounds: no prefetch 4.33 / 4.88 ms in two runs, 1024 bytes 3.92 / 4.61 ms; 512, 768, 1536
 * and 2048 bytes gained less). Prefetching past the end of a buffer does not fault. */
#define BLEND_AHEAD 1024

/* The element loops also get an AVX2 build, picked at load time by the CPU (GCC function
 * multiversioning, x86-64 Linux only); AVX2 has no FMA, so results do not change. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

enum { OP_PASTE = 0, OP_RESIZE = 1, OP_FILL = 2, OP_MASK = 3, OP_BLEND = 4 };

typedef struct {
    int op;
    Py_ssize_t c, h, w, hs, ws, es; /* channels, canvas, source size, element size */
    const int64_t *boxes;           /* (B, 4) xyxy, exclusive ends (not OP_MASK) */
    const byte *mask;               /* OP_MASK: (B, H, W) bool, 1 = take the partner */
    const byte *value;              /* OP_FILL: one element */
    const void *weight;             /* OP_BLEND: (B,) partner weight w = 1 - lam, float64 for
                                       float64 images, else float32 */
    int64_t *ry, *rx;               /* OP_RESIZE: per-sample index rows, (h) and (w) */
    int is_float;                   /* OP_BLEND: float images (es 4 or 8), else uint8 */
    int stream;                     /* out of place: write with non-temporal stores */
    int *nonfinite;                 /* out of place, float32 / float64: set to 1 when an
                                       own pixel is NaN / Inf (NULL: not checked) */
} Geometry;

/* d[0:n] = s[0:n], the 16-byte aligned middle with non-temporal stores (cache-bypassing;
 * the caller fences with stream_fence() before returning). */
static void stream_bytes(byte *d, const byte *s, size_t n) {
#ifdef HAVE_STREAM
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    if (head > n) head = n;
    memcpy(d, s, head);
    d += head, s += head, n -= head;
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)s), b = _mm_loadu_si128((const __m128i *)s + 1);
        __m128i c = _mm_loadu_si128((const __m128i *)s + 2), e = _mm_loadu_si128((const __m128i *)s + 3);
        _mm_stream_si128((__m128i *)d, a);
        _mm_stream_si128((__m128i *)d + 1, b);
        _mm_stream_si128((__m128i *)d + 2, c);
        _mm_stream_si128((__m128i *)d + 3, e);
    }
    for (; n >= 16; n -= 16, d += 16, s += 16)
        _mm_stream_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)s));
#endif
    memcpy(d, s, n);
}

static void stream_fence(void) {
#ifdef HAVE_STREAM
    _mm_sfence();
#endif
}

/* A prefetch the compiler cannot drop: GCC 12 deleted __builtin_prefetch loops inlined from
 * prefetch_span as side-effect free (no prefetch left in the object code; per-sample CutMix
 * at 224x224 ran at 6.6 ms instead of 3.7 ms). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PREFETCH(p) __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)(p)))
#else
#define PREFETCH(p) __builtin_prefetch(p)
#endif

/* Prefetch the cache lines of p[0:n]. */
static inline void prefetch_span(const byte *p, Py_ssize_t n) {
    if (n <= 0) return;
    for (Py_ssize_t off = 0; off < n; off += 64) PREFETCH(p + off);
    PREFETCH(p + n - 1);
}

/* Run the element loop M(T) with the unsigned type T of the element size es (1, 2, 4 or 8
 * bytes; dispatch() rejects any other): values are moved as raw bits. */
#define BY_SIZE(es, M)                                                                    \
    switch (es) {                                                                         \
    case 1: M(uint8_t); break;                                                            \
    case 2: M(uint16_t); break;                                                           \
    case 4: M(uint32_t); break;                                                           \
    default: M(uint64_t);                                                                 \
    }

/* dst[0:n] = the element at value, n times. */
#define FILL(T)                                                                           \
    do {                                                                                  \
        T v;                                                                              \
        memcpy(&v, value, sizeof(T));                                                     \
        for (k = 0; k < n; k++) ((T *)dst)[k] = v;                                        \
    } while (0)

static void fill_elems(byte *dst, const byte *value, Py_ssize_t n, Py_ssize_t es) {
    Py_ssize_t k;
    BY_SIZE(es, FILL)
}

/* dst[k] = row[idx[k]] for k < n; four loads before four stores (about 15 % faster than
 * one at a time in an A/B on a 2-core EPYC, ResizeMix rows). */
#define GATHER(T)                                                                         \
    do {                                                                                  \
        T *d = (T *)dst;                                                                  \
        const T *rw = (const T *)row;                                                     \
        for (k = 0; k + 4 <= n; k += 4) {                                                 \
            T v0 = rw[idx[k]], v1 = rw[idx[k + 1]], v2 = rw[idx[k + 2]], v3 = rw[idx[k + 3]]; \
            d[k] = v0;                                                                    \
            d[k + 1] = v1;                                                                \
            d[k + 2] = v2;                                                                \
            d[k + 3] = v3;                                                                \
        }                                                                                 \
        for (; k < n; k++) d[k] = rw[idx[k]];                                             \
    } while (0)

static void gather_elems(byte *dst, const byte *row, const int64_t *idx, Py_ssize_t n,
                         Py_ssize_t es) {
    Py_ssize_t k;
    BY_SIZE(es, GATHER)
}

/* Nearest source index of each of the n positions of a box of length n over a source of
 * length n_src (float32, like F.interpolate(mode="nearest") and _fast.resize_axes). */
static void nearest_axis(int64_t *out, Py_ssize_t n, Py_ssize_t n_src) {
    float scale = (float)n_src / (float)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t j = (int64_t)((float)i * scale); /* >= 0: truncation is floor */
        out[i] = j < n_src - 1 ? j : n_src - 1;
    }
}

/* dst[k] = m[k] ? src[k] : own[k] for k < n (own NULL: in place, own = dst), as a bit
 * select with an all-ones / zero mask from the 0/1 bool: both loads are unconditional, so the
 * loop vectorises (a ternary on loads does not). */
#define SELECT(T)                                                                         \
    do {                                                                                  \
        T *d = (T *)dst;                                                                  \
        const T *sv = (const T *)src, *ov = (const T *)own;                               \
        if (ov)                                                                           \
            for (k = 0; k < n; k++)                                                       \
                d[k] = ov[k] ^ ((ov[k] ^ sv[k]) & ((T)0 - (T)m[k]));                      \
        else /* in place: d itself, so the loop needs no aliasing check against it */    \
            for (k = 0; k < n; k++)                                                       \
                d[k] = d[k] ^ ((d[k] ^ sv[k]) & ((T)0 - (T)m[k]));                        \
    } while (0)

VECTOR_CLONES
static void select_elems(byte *dst, const byte *own, const byte *src, const byte *m,
                         Py_ssize_t n, Py_ssize_t es) {
    Py_ssize_t k;
    BY_SIZE(es, SELECT)
}

/* OP_MASK, one sample: every channel plane selected with the sample's (H, W) mask. */
static void mask_sample(const Geometry *g, Py_ssize_t i, byte *dst, const byte *own,
                        const byte *src, int copy_own) {
    Py_ssize_t n = g->h * g->w, plane = n * g->es;
    const byte *m = g->mask + i * n;
    for (Py_ssize_t ch = 0; ch < g->c; ch++)
        select_elems(dst + ch * plane, copy_own ? own + ch * plane : NULL, src + ch * plane, m,
                     n, g->es);
}

/* OP_BLEND, uint8: the float32 reference of mixkit's integer MixUp,
 * round(x * (1 - w) + p * w) clamped to [0, 255], each product and the sum rounded to float32
 * as torch's separate mul_/add_ do (setup.py compiles with -ffp-contract=off: no FMA).
 * Adding and subtracting 2^23 rounds a float in [0, 2^23) to the nearest integer, ties to
 * even, like torch.round. */
static inline byte blend_px(byte x, byte p, float keep, float w) {
    const float magic = 8388608.0f;
    float a = (float)x * keep, b = (float)p * w; /* float32 each */
    float r = ((a + b) + magic) - magic;
    /* NaN (a NaN weight) fails both tests and gives 0, as the AVX2 max / min below do. */
    return (byte)(r >= 0.0f ? (r <= 255.0f ? r : 255.0f) : 0.0f);
}

/* OP_BLEND, float: ATen's lerp formula (aten/src/ATen/native/Lerp.h: w < 0.5 ? x + w*(p - x)
 * : p - (p - x)*(1 - w)) with the difference, the product and the sum each rounded (no FMA,
 * unlike torch.lerp's vector kernels, so the bytes do not depend on the CPU), written as
 * base + coeff*(p - x) with (base, coeff) = (x, w) or (p, w - 1): negation is exact, so the
 * roundings are those of the formula. mixkit.ops._fast.lerp_exact is the torch twin. */
#define BLEND_FLOAT(T)                                                                    \
    do {                                                                                  \
        const T *x = (const T *)own, *pv = (const T *)src;                                \
        T *d = (T *)dst, wt = ((const T *)g->weight)[i];                                  \
        int small = wt < (T)0.5;                                                          \
        const T *base = small ? x : pv;                                                   \
        const T coeff = small ? wt : wt - (T)1;                                           \
        for (k = 0; k < n; k++) d[k] = base[k] + coeff * (pv[k] - x[k]);                  \
    } while (0)

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* blend_px on 8 bytes at a time with AVX2: the same float32 products, sum and 2^23 rounding
 * (no FMA: the target is avx2 only), clamped, then packed back to bytes. Returns the number
 * of elements done (a multiple of 8); the caller finishes the tail with blend_px. */
__attribute__((target("avx2"))) static Py_ssize_t blend_u8_avx2(byte *dst, const byte *own,
                                                                 const byte *src, Py_ssize_t n,
                                                                 float keep, float w) {
    const __m256 k = _mm256_set1_ps(keep), wv = _mm256_set1_ps(w);
    const __m256 magic = _mm256_set1_ps(8388608.0f), lo = _mm256_setzero_ps();
    const __m256 hi = _mm256_set1_ps(255.0f);
    Py_ssize_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m128i xb = _mm_loadl_epi64((const __m128i *)(own + j));
        __m128i pb = _mm_loadl_epi64((const __m128i *)(src + j));
        __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(xb));
        __m256 p = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(pb));
        __m256 r = _mm256_add_ps(_mm256_mul_ps(x, k), _mm256_mul_ps(p, wv));
        r = _mm256_sub_ps(_mm256_add_ps(r, magic), magic);
        __m256i q = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
        __m128i qlo = _mm256_castsi256_si128(q), qhi = _mm256_extracti128_si256(q, 1);
        __m128i words = _mm_packus_epi32(qlo, qhi);
        _mm_storel_epi64((__m128i *)(dst + j), _mm_packus_epi16(words, words));
    }
    return j;
}
#define HAVE_BLEND_U8_AVX2 1
#endif

/* n elements of sample i's MixUp: dst from own and its partner src (dst may be own). */
VECTOR_CLONES
static void blend_elems(const Geometry *g, Py_ssize_t i, byte *dst, const byte *own,
                        const byte *src, Py_ssize_t n) {
    Py_ssize_t k;
    if (g->is_float) {
        if (g->es == 4)
            BLEND_FLOAT(float);
        else
            BLEND_FLOAT(double);
        return;
    }
    const float w = ((const float *)g->weight)[i], keep = 1.0f - w;
#ifdef HAVE_BLEND_U8_AVX2
    if (__builtin_cpu_supports("avx2")) { /* 8 at a time, then the tail */
        Py_ssize_t j = blend_u8_avx2(dst, own, src, n, keep, w);
        dst += j, own += j, src += j, n -= j;
    }
#endif
    if (dst == own) /* in place: one pointer, so the loop is not versioned for aliasing */
        for (k = 0; k < n; k++) dst[k] = blend_px(dst[k], src[k], keep, w);
    else
        for (k = 0; k < n; k++) dst[k] = blend_px(own[k], src[k], keep, w);
}

#ifdef HAVE_STREAM
/* BLEND_FLOAT straight from the registers, one loop per base so each element is loaded once
 * per source (SSE2 and AVX have no FMA: the same roundings). A blend into an L1 buffer
 * streamed afterwards was 40 % slower at 224x224. NAME(d, x, pv, small, coeff, n, bad) with
 * VEC lanes of type T per vector V, intrinsics PFX_op_SFX (_mm / _mm256, ps / pd), stores
 * PFX_STORE_SFX (stream: non-temporal, with prefetching when AHEAD_ON; storeu: into the
 * cache); the head up to the vector alignment of d and the tail are scalar. The same pass
 * checks the own pixels x: x - x is +0 for a finite x and NaN for NaN / Inf, so the OR of
 * the bits of every x - x is a NaN exactly when one is not finite (*bad = 1; bad NULL: no
 * check). */
#define DEFINE_BLEND_STREAM(NAME, ATTR, T, V, VEC, PFX, SFX, STORE, AHEAD_ON)           \
    ATTR static void NAME(T *d, const T *x, const T *pv, int small, T coeff, Py_ssize_t n, \
                          int *bad) {                                                     \
        const Py_ssize_t align = VEC * (Py_ssize_t)sizeof(T);                             \
        const V c = PFX##_set1_##SFX(coeff);                                              \
        V acc = PFX##_setzero_##SFX();                                                    \
        T sacc = 0, lanes[VEC];                                                           \
        Py_ssize_t k = 0;                                                                 \
        for (; k < n && ((uintptr_t)(d + k) % align); k++) {                              \
            d[k] = (small ? x[k] : pv[k]) + coeff * (pv[k] - x[k]);                       \
            sacc += x[k] - x[k];                                                          \
        }                                                                                 \
        if (small)                                                                        \
            for (; k + VEC <= n; k += VEC) {                                              \
                if (AHEAD_ON && !((k * (Py_ssize_t)sizeof(T)) & 63)) { /* once a line */  \
                    PREFETCH((const char *)(x + k) + BLEND_AHEAD);                        \
                    PREFETCH((const char *)(pv + k) + BLEND_AHEAD);                       \
                }                                                                         \
                V vx = PFX##_loadu_##SFX(x + k);                                          \
                V dv = PFX##_sub_##SFX(PFX##_loadu_##SFX(pv + k), vx);                    \
                PFX##_##STORE##_##SFX(d + k, PFX##_add_##SFX(vx, PFX##_mul_##SFX(c, dv)));   \
                acc = PFX##_or_##SFX(acc, PFX##_sub_##SFX(vx, vx));                         \
            }                                                                             \
        else                                                                              \
            for (; k + VEC <= n; k += VEC) {                                              \
                if (AHEAD_ON && !((k * (Py_ssize_t)sizeof(T)) & 63)) {                    \
                    PREFETCH((const char *)(x + k) + BLEND_AHEAD);                        \
                    PREFETCH((const char *)(pv + k) + BLEND_AHEAD);                       \
                }                                                                         \
                V vx = PFX##_loadu_##SFX(x + k), vp = PFX##_loadu_##SFX(pv + k);          \
                V dv = PFX##_sub_##SFX(vp, vx);                                           \
                PFX##_##STORE##_##SFX(d + k, PFX##_add_##SFX(vp, PFX##_mul_##SFX(c, dv)));   \
                acc = PFX##_or_##SFX(acc, PFX##_sub_##SFX(vx, vx));                         \
            }                                                                             \
        for (; k < n; k++) {                                                              \
            d[k] = (small ? x[k] : pv[k]) + coeff * (pv[k] - x[k]);                       \
            sacc += x[k] - x[k];                                                          \
        }                                                                                 \
        PFX##_storeu_##SFX(lanes, acc);                                                   \
        for (Py_ssize_t j = 0; j < VEC; j++) sacc += lanes[j];                            \
        if (bad && sacc != sacc) *bad = 1;                                                \
    }

DEFINE_BLEND_STREAM(blend_stream_f32, , float, __m128, 4, _mm, ps, stream, 1)
DEFINE_BLEND_STREAM(blend_stream_f64, , double, __m128d, 2, _mm, pd, stream, 1)
DEFINE_BLEND_STREAM(blend_cache_f32, , float, __m128, 4, _mm, ps, storeu, 0)
DEFINE_BLEND_STREAM(blend_cache_f64, , double, __m128d, 2, _mm, pd, storeu, 0)

/* The same with 32-byte AVX vectors where the CPU has AVX2. With the one-load-per-source
 * loops: 64x3x224x224 float32 MixUp into a preallocated batch 4.06 ms vs 4.74 ms for the SSE2
 * loop that loaded the base again (medians of 6 interleaved rounds on a 2-core EPYC; copy_
 * 4.23 ms). */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))
DEFINE_BLEND_STREAM(blend_stream_f32_avx, AVX2, float, __m256, 8, _mm256, ps, stream, 1)
DEFINE_BLEND_STREAM(blend_stream_f64_avx, AVX2, double, __m256d, 4, _mm256, pd, stream, 1)
DEFINE_BLEND_STREAM(blend_cache_f32_avx, AVX2, float, __m256, 8, _mm256, ps, storeu, 0)
DEFINE_BLEND_STREAM(blend_cache_f64_avx, AVX2, double, __m256d, 4, _mm256, pd, storeu, 0)
#define HAS_AVX2() __builtin_cpu_supports("avx2")
#else
#define blend_stream_f32_avx blend_stream_f32
#define blend_stream_f64_avx blend_stream_f64
#define blend_cache_f32_avx blend_cache_f32
#define blend_cache_f64_avx blend_cache_f64
#define HAS_AVX2() 0
#endif

/* Float MixUp of sample i from the registers, (base, coeff) as in BLEND_FLOAT: streamed
 * (non-temporal stores, prefetching) or into the cache (a small sample), checking the own
 * pixels in the same loop when g->nonfinite is set. */
static void blend_vec(const Geometry *g, Py_ssize_t i, byte *dst, const byte *own,
                      const byte *src, Py_ssize_t n, int stream) {
    int avx = HAS_AVX2();
    if (g->es == 4) {
        float wt = ((const float *)g->weight)[i];
        int small = wt < 0.5f;
        void (*f)(float *, const float *, const float *, int, float, Py_ssize_t, int *) =
            stream ? (avx ? blend_stream_f32_avx : blend_stream_f32)
                   : (avx ? blend_cache_f32_avx : blend_cache_f32);
        f((float *)dst, (const float *)own, (const float *)src, small, small ? wt : wt - 1.0f,
          n, g->nonfinite);
    } else {
        double wt = ((const double *)g->weight)[i];
        int small = wt < 0.5;
        void (*f)(double *, const double *, const double *, int, double, Py_ssize_t, int *) =
            stream ? (avx ? blend_stream_f64_avx : blend_stream_f64)
                   : (avx ? blend_cache_f64_avx : blend_cache_f64);
        f((double *)dst, (const double *)own, (const double *)src, small,
          small ? wt : wt - 1.0, n, g->nonfinite);
    }
}
#endif

/* 1 if one of the n float32 (es 4) / float64 (es 8) elements at x is NaN / Inf, copying them
 * to d on the way unless d is NULL (a small plane copied and checked in one pass). x - x is
 * +0 for a finite x and NaN for NaN / Inf, as in DEFINE_BLEND_STREAM; the bits of every
 * x - x are ORed (a NaN stays a NaN), vectorised with two accumulators where SSE2 is there (a
 * scalar float reduction does not vectorise without -ffast-math); NAME(d, x, n) as the macro
 * above. The test of d is loop-invariant: -O3 unswitches it. */
#define DEFINE_SCAN(NAME, ATTR, T, V, VEC, PFX, SFX)                                      \
    ATTR static int NAME(T *d, const T *x, Py_ssize_t n) {                                \
        V a0 = PFX##_setzero_##SFX(), a1 = a0;                                            \
        T s = 0, lanes[VEC];                                                              \
        Py_ssize_t k = 0;                                                                 \
        for (; k + 2 * VEC <= n; k += 2 * VEC) {                                          \
            V v0 = PFX##_loadu_##SFX(x + k), v1 = PFX##_loadu_##SFX(x + k + VEC);         \
            if (d) {                                                                      \
                PFX##_storeu_##SFX(d + k, v0);                                            \
                PFX##_storeu_##SFX(d + k + VEC, v1);                                      \
            }                                                                             \
            a0 = PFX##_or_##SFX(a0, PFX##_sub_##SFX(v0, v0));                             \
            a1 = PFX##_or_##SFX(a1, PFX##_sub_##SFX(v1, v1));                             \
        }                                                                                 \
        for (; k < n; k++) {                                                              \
            if (d) d[k] = x[k];                                                           \
            s += x[k] - x[k];                                                             \
        }                                                                                 \
        PFX##_storeu_##SFX(lanes, PFX##_or_##SFX(a0, a1));                                \
        for (Py_ssize_t j = 0; j < VEC; j++) s += lanes[j];                               \
        return s != s;                                                                    \
    }

#ifdef HAVE_STREAM
DEFINE_SCAN(scan_f32, , float, __m128, 4, _mm, ps)
DEFINE_SCAN(scan_f64, , double, __m128d, 2, _mm, pd)
#if defined(__GNUC__) && defined(__x86_64__)
DEFINE_SCAN(scan_f32_avx, AVX2, float, __m256, 8, _mm256, ps)
DEFINE_SCAN(scan_f64_avx, AVX2, double, __m256d, 4, _mm256, pd)
#else
#define scan_f32_avx scan_f32
#define scan_f64_avx scan_f64
#endif
#endif

static int any_nonfinite(const byte *x, Py_ssize_t n, Py_ssize_t es) {
#ifdef HAVE_STREAM
    int avx = HAS_AVX2();
    if (es == 4) return (avx ? scan_f32_avx : scan_f32)(NULL, (const float *)x, n);
    return (avx ? scan_f64_avx : scan_f64)(NULL, (const double *)x, n);
#else
    if (es == 4) {
        const float *v = (const float *)x;
        float s = 0;
        for (Py_ssize_t k = 0; k < n; k++) s += v[k] - v[k];
        return s != s;
    }
    const double *v = (const double *)x;
    double s = 0;
    for (Py_ssize_t k = 0; k < n; k++) s += v[k] - v[k];
    return s != s;
#endif
}

/* The fused finite check of an out-of-place float op (g->nonfinite set): the n own elements
 * at x, read just before (still in cache). */
static inline void check_own(const Geometry *g, const byte *x, Py_ssize_t n) {
    if (g->nonfinite && !*g->nonfinite && any_nonfinite(x, n, g->es)) *g->nonfinite = 1;
}

/* dst[0:n] = own[0:n] (n elements), own checked in the same pass where g->nonfinite is set
 * (a small sample, not streamed). */
static void copy_checked(const Geometry *g, byte *dst, const byte *own, Py_ssize_t n) {
#ifdef HAVE_STREAM
    if (g->nonfinite) {
        int avx = HAS_AVX2(), bad;
        if (g->es == 4)
            bad = (avx ? scan_f32_avx : scan_f32)((float *)dst, (const float *)own, n);
        else
            bad = (avx ? scan_f64_avx : scan_f64)((double *)dst, (const double *)own, n);
        if (bad) *g->nonfinite = 1;
        return;
    }
#endif
    memcpy(dst, own, (size_t)(n * g->es));
    check_own(g, own, n);
}

/* OP_BLEND, one sample; streamed: floats from the registers, uint8 (and floats without
 * SSE2) blended in chunks in an L1 buffer, then streamed out. */
static void blend_sample(const Geometry *g, Py_ssize_t i, byte *dst, const byte *own,
                         const byte *src, int stream) {
    Py_ssize_t n = g->c * g->h * g->w, es = g->es;
#ifdef HAVE_STREAM
    /* Streamed, or checked in the same loop (into the cache: 128x3x32x32 float32 out of
     * place, 78 us vs 86 us blending and then scanning the sample; unchecked, the
     * compiler's loop below was the faster, 72 us vs 80 us; medians of 5 interleaved rounds
     * on a 2-core EPYC). */
    if (g->is_float && (stream || g->nonfinite)) {
        blend_vec(g, i, dst, own, src, n, stream);
        return;
    }
#endif
    if (!stream) {
        blend_elems(g, i, dst, own, src, n);
        check_own(g, own, n); /* the sample just read (a small one: in cache) */
        return;
    }
    byte buf[ROW_BUF];
    Py_ssize_t chunk = ROW_BUF / es;
    for (Py_ssize_t off = 0; off < n; off += chunk) {
        Py_ssize_t m = n - off < chunk ? n - off : chunk;
        blend_elems(g, i, buf, own + off * es, src + off * es, m);
        stream_bytes(dst + off * es, buf, (size_t)(m * es));
        check_own(g, own + off * es, m); /* the chunk just read, still in cache */
    }
}

/* The box pixels of row r of one plane into drow: pasted, resized (nearest) or filled. */
static inline void box_row(const Geometry *g, byte *drow, const byte *s, Py_ssize_t r,
                           Py_ssize_t y1, Py_ssize_t x1, Py_ssize_t x2) {
    Py_ssize_t es = g->es;
    if (g->op == OP_PASTE)
        memcpy(drow, s + (r * g->w + x1) * es, (size_t)((x2 - x1) * es));
    else if (g->op == OP_RESIZE)
        gather_elems(drow, s + g->ry[r - y1] * g->ws * es, g->rx, x2 - x1, es);
    else
        fill_elems(drow, g->value, x2 - x1, es);
}

/* A box op out of place, streamed (g->stream, rows of at most ROW_BUF bytes): rows outside
 * the box streamed from own, box rows composed in a buffer (own | box | own) and streamed;
 * the pieces of the box row AHEAD rows on are prefetched. */
static void box_sample_stream(const Geometry *g, Py_ssize_t x1, Py_ssize_t y1, Py_ssize_t x2,
                              Py_ssize_t y2, byte *dst, const byte *own, const byte *src) {
    byte buf[ROW_BUF];
    Py_ssize_t h = g->h, es = g->es, row = g->w * es, plane = h * row;
    Py_ssize_t splane = g->hs * g->ws * es, left = x1 * es, right = x2 * es;
    for (Py_ssize_t ch = 0; ch < g->c; ch++) {
        byte *d = dst + ch * plane;
        const byte *o = own + ch * plane;
        const byte *s = src ? src + ch * (g->op == OP_RESIZE ? splane : plane) : NULL;
        for (Py_ssize_t r = 0; r < h; r++) {
            Py_ssize_t ra = r + AHEAD;
            if (ra >= y1 && ra < y2) {
                if (g->nonfinite) { /* the whole own row is checked */
                    prefetch_span(o + ra * row, row);
                } else {
                    prefetch_span(o + ra * row, left);
                    prefetch_span(o + ra * row + right, row - right);
                }
                if (g->op == OP_PASTE)
                    prefetch_span(s + ra * row + left, right - left);
                else if (g->op == OP_RESIZE)
                    prefetch_span(s + g->ry[ra - y1] * g->ws * es, g->ws * es);
            }
            const byte *orow = o + r * row;
            if (r < y1 || r >= y2) {
                stream_bytes(d + r * row, orow, (size_t)row);
            } else {
                memcpy(buf, orow, (size_t)left);
                box_row(g, buf + left, s, r, y1, x1, x2);
                memcpy(buf + right, orow + right, (size_t)(row - right));
                stream_bytes(d + r * row, buf, (size_t)row);
            }
            check_own(g, orow, g->w);
        }
    }
}

/* Write one sample: dst (C, H, W) from own (C, H, W) outside the box (skipped when
 * copy_own is 0: in place) and from src (C, Hs, Ws) / the fill value inside it. */
static void one_sample(const Geometry *g, Py_ssize_t i, byte *dst, const byte *own,
                       const byte *src, int copy_own) {
    if (g->op == OP_MASK) {
        mask_sample(g, i, dst, own, src, copy_own);
        return;
    }
    int stream = g->stream && copy_own;
    if (g->op == OP_BLEND) {
        blend_sample(g, i, dst, own, src, stream);
        return;
    }
    const int64_t *box = g->boxes + 4 * i;
    Py_ssize_t x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
    Py_ssize_t h = g->h, w = g->w, es = g->es, row = w * es, plane = h * row;
    Py_ssize_t splane = g->hs * g->ws * es;
    int empty = x2 <= x1 || y2 <= y1;
    if (empty) {
        if (stream)
            stream_bytes(dst, own, (size_t)(g->c * plane));
        else if (copy_own)
            copy_checked(g, dst, own, g->c * h * w);
        if (!copy_own || stream) check_own(g, own, g->c * h * w);
        return;
    }
    if (g->op == OP_RESIZE) {
        nearest_axis(g->ry, y2 - y1, g->hs);
        nearest_axis(g->rx, x2 - x1, g->ws);
    }
    if (stream && row <= ROW_BUF) {
        box_sample_stream(g, x1, y1, x2, y2, dst, own, src);
        return;
    }
    /* Not streamed (a small sample: copied and checked in one pass, then the box rows) or
     * rows longer than ROW_BUF (checked first). */
    Py_ssize_t left = x1 * es, mid = (x2 - x1) * es;
    /* Small planes (in cache): copy the whole plane, then overwrite the box rows -- fewer,
     * longer copies, and no prefetching (per-sample ResizeMix at 128x3x32x32 into a
     * preallocated batch: 231 us vs 314 us copying around the box with prefetches, median of
     * 7 interleaved rounds on a 2-core EPYC). Large planes: copy around the box so each byte
     * is written once, the next box row's source prefetched. */
    int small = plane <= (1 << 14);
    int whole = copy_own && small;
    if (!whole) check_own(g, own, g->c * h * w);
    for (Py_ssize_t ch = 0; ch < g->c; ch++) {
        byte *d = dst + ch * plane;
        const byte *o = own + ch * plane;
        const byte *s = src ? src + ch * (g->op == OP_RESIZE ? splane : plane) : NULL;
        if (whole) {
            copy_checked(g, d, o, h * w);
        } else if (copy_own) {
            memcpy(d, o, (size_t)(y1 * row));
            memcpy(d + y2 * row, o + y2 * row, (size_t)((h - y2) * row));
        }
        for (Py_ssize_t r = y1; r < y2; r++) {
            byte *dr = d + r * row;
            if (!small && r + 1 < y2 && g->op != OP_FILL) { /* the next box row's source */
                const byte *nx = g->op == OP_PASTE ? s + (r + 1) * row + left
                                                   : s + g->ry[r + 1 - y1] * g->ws * es;
                Py_ssize_t len = g->op == OP_PASTE ? mid : g->ws * es;
                prefetch_span(nx, len);
            }
            if (copy_own && !whole) {
                const byte *orow = o + r * row;
                memcpy(dr, orow, (size_t)left);
                memcpy(dr + left + mid, orow + left + mid, (size_t)(row - left - mid));
            }
            box_row(g, dr + left, s, r, y1, x1, x2);
        }
    }
}

static int check_args(const int64_t *perm, const int64_t *boxes, Py_ssize_t b, Py_ssize_t h,
                      Py_ssize_t w) {
    for (Py_ssize_t i = 0; perm && i < b; i++) {
        if (perm[i] < 0 || perm[i] >= b) {
            PyErr_Format(PyExc_ValueError, "perm must hold indices in [0, %zd), got %lld at %zd",
                         b, (long long)perm[i], i);
            return -1;
        }
    }
    for (Py_ssize_t i = 0; boxes && i < b; i++) {
        const int64_t *q = boxes + 4 * i;
        if (!(0 <= q[0] && q[0] <= q[2] && q[2] <= w && 0 <= q[1] && q[1] <= q[3] && q[3] <= h)) {
            PyErr_Format(PyExc_ValueError,
                         "boxes must satisfy 0 <= x1 <= x2 <= %zd and 0 <= y1 <= y2 <= %zd, got "
                         "[%lld, %lld, %lld, %lld] at %zd",
                         w, h, (long long)q[0], (long long)q[1], (long long)q[2],
                         (long long)q[3], i);
            return -1;
        }
    }
    return 0;
}

/* 1 if perm is a permutation of [0, b), 0 if not, -1 out of memory. */
static int is_permutation(const int64_t *perm, Py_ssize_t b) {
    byte *seen = calloc((size_t)b, 1);
    if (!seen) return -1;
    int ok = 1;
    for (Py_ssize_t i = 0; i < b && ok; i++) {
        if (seen[perm[i]]) ok = 0;
        seen[perm[i]] = 1;
    }
    free(seen);
    return ok;
}

/* The work of one thread: positions [lo, hi) of a visiting order. Position q mixes sample
 * idx[q] from the source from[q] (NULL: the fill value, LOCAL: the thread's own scratch, which
 * holds a copy of idx[q']'s sample taken where snap[q'] is set, the start of a cycle walked
 * whole by this thread). */
#define LOCAL ((const byte *)1)
typedef struct {
    Geometry g; /* a copy: own resize axes and finite flag */
    int bad;
    byte *dst, *scratch;
    const byte *own;
    const Py_ssize_t *idx;
    const byte *const *from;
    const byte *snap;
    Py_ssize_t lo, hi, sample;
    int copy_own;
} Task;

static void *run_task(void *arg) {
    Task *t = (Task *)arg;
    const Geometry *g = &t->g;
    for (Py_ssize_t q = t->lo; q < t->hi; q++) {
        Py_ssize_t i = t->idx[q];
        if (t->snap && t->snap[q]) memcpy(t->scratch, t->own + i * t->sample, (size_t)t->sample);
        const byte *s = t->from[q] == LOCAL ? t->scratch : t->from[q];
        one_sample(g, i, t->dst + i * t->sample, t->own + i * t->sample, s, t->copy_own);
    }
    if (g->stream) stream_fence(); /* this core's non-temporal stores, before the join */
    return NULL;
}

#if !defined(_WIN32)
#include <pthread.h>
#define HAVE_THREADS 1
#endif

/* The whole batch on up to `threads` threads, each a contiguous range of the visiting order.
 * Out of place, partners from the batch (perm a permutation): backwards along the cycles of
 * perm (k, then the i with perm[i] = k, ...), so sample k, just read as its own (MixUp, the
 * fused finite check: all of it), is read as the next sample's partner while still in cache:
 * the batch comes from memory about once instead of twice. In place, partners from the batch:
 * forwards along the cycles, each sample reading a partner not yet overwritten; a cycle walked
 * whole by one thread saves its first sample in that thread's scratch before it starts, and
 * where a cycle is split between threads the partner of each piece's last sample is copied
 * before any thread starts. In place with a repeated partner: every source from a copy of
 * the batch. Returns 0, or -1 when out of memory (GIL not held: no exception set). */
static int run(Geometry *g, byte *dst, const byte *own, const byte *src, const int64_t *perm,
               byte *scratch, Py_ssize_t b, Py_ssize_t threads) {
    Py_ssize_t sample = g->c * g->h * g->w * g->es;
    Py_ssize_t ssample = g->c * g->hs * g->ws * g->es;
    Py_ssize_t nt = threads < 1 ? 1 : (threads > b ? b : threads);
#ifndef HAVE_THREADS
    nt = 1;
#endif
    if (b == 0) return 0;
    int rc = -1, perm_ok = perm ? is_permutation(perm, b) : 0;
    if (perm_ok < 0) return -1;
    int cycles_in_place = dst == own && src == own && perm_ok;
    Py_ssize_t *idx = malloc(sizeof(Py_ssize_t) * (size_t)b);
    const byte **from = malloc(sizeof(const byte *) * (size_t)b);
    byte *seen = calloc((size_t)b, 1), *snap = cycles_in_place ? calloc((size_t)b, 1) : NULL;
    byte *copy = NULL, *pre = NULL, *tmp = NULL;
    Task *tasks = calloc((size_t)nt, sizeof(Task));
    int64_t *axes = NULL;
    if (!idx || !from || !seen || !tasks || (cycles_in_place && !snap)) goto done;
    Py_ssize_t n = 0;
    if (cycles_in_place) { /* forwards along each cycle from its smallest sample */
        for (Py_ssize_t start = 0; start < b; start++)
            for (Py_ssize_t i = start; !seen[i]; i = perm[i]) seen[i] = 1, idx[n++] = i;
    } else if (dst != own && src == own && perm_ok) { /* backwards: the inverse's cycles */
        Py_ssize_t *inv = malloc(sizeof(Py_ssize_t) * (size_t)b);
        if (!inv) goto done;
        for (Py_ssize_t i = 0; i < b; i++) inv[perm[i]] = i;
        for (Py_ssize_t start = 0; start < b; start++)
            for (Py_ssize_t k = start; !seen[k]; k = inv[k]) seen[k] = 1, idx[n++] = k;
        free(inv);
    } else {
        for (Py_ssize_t i = 0; i < b; i++) idx[i] = i;
    }
    const byte *base = src;
    if (dst == own && src == own && !cycles_in_place) { /* a repeated partner (or none) */
        if (!(copy = malloc((size_t)(b * sample)))) goto done;
        memcpy(copy, own, (size_t)(b * sample));
        base = copy;
    }
    for (Py_ssize_t q = 0; q < b; q++) {
        Py_ssize_t i = idx[q];
        from[q] = base ? base + (perm ? perm[i] : i) * ssample : NULL;
    }
    if (cycles_in_place) {
        /* Pieces: runs of one cycle inside one thread's range. A whole cycle: its first sample
         * saved in the thread's scratch (LOCAL); a split one: the partner of the piece's last
         * sample (in another thread's range) copied into pre before the threads start. */
        Py_ssize_t npre = 0;
        for (int pass = 0; pass < 2; pass++) {
            Py_ssize_t k = 0;
            for (Py_ssize_t t = 0; t < nt; t++) {
                Py_ssize_t lo = t * b / nt, hi = (t + 1) * b / nt;
                for (Py_ssize_t a = lo; a < hi;) {
                    Py_ssize_t e = a; /* the piece [a, e] */
                    while (e + 1 < hi && idx[e + 1] == perm[idx[e]]) e++;
                    if (perm[idx[e]] == idx[a]) { /* the whole cycle */
                        if (pass) snap[a] = 1, from[e] = LOCAL;
                    } else if (pass) {
                        memcpy(pre + k * sample, own + perm[idx[e]] * sample, (size_t)sample);
                        from[e] = pre + k * sample;
                        k++;
                    } else {
                        npre++;
                    }
                    a = e + 1;
                }
            }
            if (!pass && npre && !(pre = malloc((size_t)(npre * sample)))) goto done;
        }
        if (nt > 1 && !(tmp = malloc((size_t)((nt - 1) * sample)))) goto done;
    }
    if (g->op == OP_RESIZE) { /* each thread's index rows */
        Py_ssize_t len = g->h + g->w + 2;
        if (!(axes = malloc(sizeof(int64_t) * (size_t)(nt * len)))) goto done;
    }
    for (Py_ssize_t t = 0; t < nt; t++) {
        Task *k = &tasks[t];
        k->g = *g;
        k->g.nonfinite = g->nonfinite ? &k->bad : NULL;
        if (axes) {
            k->g.ry = axes + t * (g->h + g->w + 2);
            k->g.rx = k->g.ry + g->h + 1;
        }
        k->dst = dst, k->own = own, k->idx = idx, k->from = from, k->snap = snap;
        k->scratch = t == 0 ? scratch : (tmp ? tmp + (t - 1) * sample : NULL);
        k->lo = t * b / nt, k->hi = (t + 1) * b / nt, k->sample = sample;
        k->copy_own = dst != own;
    }
#ifdef HAVE_THREADS
    pthread_t *ids = nt > 1 ? malloc(sizeof(pthread_t) * (size_t)nt) : NULL;
    byte *started = nt > 1 ? calloc((size_t)nt, 1) : NULL;
    for (Py_ssize_t t = 1; t < nt && ids && started; t++)
        started[t] = pthread_create(&ids[t], NULL, run_task, &tasks[t]) == 0;
    run_task(&tasks[0]);
    for (Py_ssize_t t = 1; t < nt; t++) {
        if (ids && started && started[t])
            pthread_join(ids[t], NULL);
        else
            run_task(&tasks[t]); /* not started: run it here */
    }
    free(ids);
    free(started);
#else
    for (Py_ssize_t t = 0; t < nt; t++) run_task(&tasks[t]);
#endif
    for (Py_ssize_t t = 0; t < nt; t++)
        if (g->nonfinite && tasks[t].bad) *g->nonfinite = 1;
    rc = 0;
done:
    free(idx);
    free((void *)from);
    free(seen);
    free(snap);
    free(copy);
    free(pre);
    free(tmp);
    free(tasks);
    free(axes);
    return rc;
}

static PyObject *dispatch(Geometry *g, unsigned long long dst, unsigned long long own,
                          unsigned long long src, unsigned long long perm,
                          unsigned long long boxes, unsigned long long scratch, Py_ssize_t b,
                          Py_ssize_t threads) {
    if (g->c < 0 || g->h < 0 || g->w < 0 || b < 0) {
        PyErr_SetString(PyExc_ValueError, "sizes must be non-negative");
        return NULL;
    }
    if (g->es != 1 && g->es != 2 && g->es != 4 && g->es != 8) {
        PyErr_Format(PyExc_ValueError, "element size must be 1, 2, 4 or 8 bytes, got %zd", g->es);
        return NULL;
    }
    if (threads < 1) {
        PyErr_Format(PyExc_ValueError, "threads must be >= 1, got %zd", threads);
        return NULL;
    }
    const int64_t *p = (const int64_t *)(uintptr_t)perm;
    const int64_t *bx = (const int64_t *)(uintptr_t)boxes;
    if (check_args(p, bx, b, g->h, g->w) < 0) return NULL;
    if (dst == own && src == own && p && !scratch) { /* in place along the cycles of perm */
        PyErr_SetString(PyExc_ValueError, "in place with a perm needs a one-sample scratch");
        return NULL;
    }
    g->boxes = bx;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run(g, (byte *)(uintptr_t)dst, (const byte *)(uintptr_t)own,
             (const byte *)(uintptr_t)src, p, (byte *)(uintptr_t)scratch, b, threads);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* dispatch() with the fused finite check (check: float32 / float64 elements out of place
 * only, where every own element is read in the kernel's pass or right after it, in cache):
 * returns True when every own element is finite or check is 0, False when one is NaN / Inf
 * (dst written). */
static PyObject *checked_dispatch(Geometry *g, int check, unsigned long long dst,
                                  unsigned long long own, unsigned long long src,
                                  unsigned long long perm, unsigned long long boxes,
                                  unsigned long long scratch, Py_ssize_t b, Py_ssize_t threads) {
    int bad = 0;
    if (check && !(dst != own && (g->es == 4 || g->es == 8))) {
        PyErr_SetString(PyExc_ValueError,
                        "the finite check runs only on float32 / float64 images out of place");
        return NULL;
    }
    g->nonfinite = check ? &bad : NULL;
    PyObject *res = dispatch(g, dst, own, src, perm, boxes, scratch, b, threads);
    if (!res) return NULL;
    Py_DECREF(res);
    return PyBool_FromLong(!bad);
}

static PyObject *py_paste(PyObject *self, PyObject *args) {
    unsigned long long dst, own, src, perm, boxes, scratch;
    Py_ssize_t b;
    Geometry g = {.op = OP_PASTE};
    int check = 0;
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKKKnnnnnpp|n", &dst, &own, &src, &perm, &boxes, &scratch, &b,
                          &g.c, &g.h, &g.w, &g.es, &g.stream, &check, &threads))
        return NULL;
    g.hs = g.h;
    g.ws = g.w;
    return checked_dispatch(&g, check, dst, own, src, perm, boxes, scratch, b, threads);
}

static PyObject *py_resize(PyObject *self, PyObject *args) {
    unsigned long long dst, own, src, perm, boxes, scratch;
    Py_ssize_t b;
    Geometry g = {.op = OP_RESIZE};
    int check = 0;
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKKKnnnnnnnpp|n", &dst, &own, &src, &perm, &boxes, &scratch,
                          &b, &g.c, &g.h, &g.w, &g.hs, &g.ws, &g.es, &g.stream, &check,
                          &threads))
        return NULL;
    if (g.hs <= 0 || g.ws <= 0) {
        PyErr_SetString(PyExc_ValueError, "the source must have a positive height and width");
        return NULL;
    }
    return checked_dispatch(&g, check, dst, own, src, perm, boxes, scratch, b, threads);
}

static PyObject *py_fill(PyObject *self, PyObject *args) {
    unsigned long long dst, own, boxes, value;
    Py_ssize_t b;
    Geometry g = {.op = OP_FILL};
    int check = 0;
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKnnnnnpp|n", &dst, &own, &boxes, &value, &b, &g.c, &g.h,
                          &g.w, &g.es, &g.stream, &check, &threads))
        return NULL;
    g.hs = g.h;
    g.ws = g.w;
    g.value = (const byte *)(uintptr_t)value;
    return checked_dispatch(&g, check, dst, own, 0, 0, boxes, 0, b, threads);
}

static PyObject *py_mask(PyObject *self, PyObject *args) {
    unsigned long long dst, own, perm, mask, scratch;
    Py_ssize_t b;
    Geometry g = {.op = OP_MASK};
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKKnnnnn|n", &dst, &own, &perm, &mask, &scratch, &b, &g.c,
                          &g.h, &g.w, &g.es, &threads))
        return NULL;
    g.hs = g.h;
    g.ws = g.w;
    g.mask = (const byte *)(uintptr_t)mask;
    return dispatch(&g, dst, own, own, perm, 0, scratch, b, threads);
}

static PyObject *py_blend(PyObject *self, PyObject *args) {
    unsigned long long dst, own, perm, weight, scratch;
    Py_ssize_t b;
    int check = 0;
    Geometry g = {.op = OP_BLEND};
    Py_ssize_t threads = 1;
    if (!PyArg_ParseTuple(args, "KKKKKnnnnnppp|n", &dst, &own, &perm, &weight, &scratch, &b,
                          &g.c, &g.h, &g.w, &g.es, &g.is_float, &g.stream, &check, &threads))
        return NULL;
    if (check && !g.is_float) {
        PyErr_SetString(PyExc_ValueError, "the finite check takes float images");
        return NULL;
    }
    if (g.is_float ? g.es != 4 && g.es != 8 : g.es != 1) {
        PyErr_Format(PyExc_ValueError,
                     "blend takes uint8 or float32 / float64 images, got element size %zd", g.es);
        return NULL;
    }
    g.hs = g.h;
    g.ws = g.w;
    g.weight = (const void *)(uintptr_t)weight;
    return checked_dispatch(&g, check, dst, own, own, perm, 0, scratch, b, threads);
}

/* Mixed targets of class ids, float32 (B, K): row i is lerp(t[perm[i]], t[i], w_i) with t the
 * (smoothed) one-hot rows -- `on` at the class, `off` elsewhere, as the caller computed them
 * with ops.smooth -- and w_i = lam[i], or 1 for kinds NONE (0) and FILL (4) (label_lam). The
 * lerp is ops.mix_targets' formula, every difference, product and sum rounded to float32
 * (-ffp-contract=off): (base, coeff) = (partner, w) for w < 0.5, else (own, w - 1). Labels
 * outside [0, K) and perm outside [0, B) raise ValueError before anything is written. */
static PyObject *py_targets(PyObject *self, PyObject *args) {
    unsigned long long dst, labels, perm, lam, kind;
    Py_ssize_t b, k;
    float on, off;
    if (!PyArg_ParseTuple(args, "KKKKKnnff", &dst, &labels, &perm, &lam, &kind, &b, &k, &on,
                          &off))
        return NULL;
    const int64_t *y = (const int64_t *)(uintptr_t)labels, *p = (const int64_t *)(uintptr_t)perm;
    const int64_t *kd = (const int64_t *)(uintptr_t)kind;
    const float *lm = (const float *)(uintptr_t)lam;
    float *out = (float *)(uintptr_t)dst;
    if (b > 0) {
        int64_t lo = y[0], hi = y[0];
        for (Py_ssize_t i = 1; i < b; i++) lo = y[i] < lo ? y[i] : lo, hi = y[i] > hi ? y[i] : hi;
        if (lo < 0 || hi >= k) {
            PyErr_Format(PyExc_ValueError,
                         "labels must be class ids in [0, num_classes=%zd), got values in "
                         "[%lld, %lld]: num_classes too small?",
                         k, (long long)lo, (long long)hi);
            return NULL;
        }
    }
    if (check_args(p, NULL, b, 0, 0) < 0) return NULL;
    for (Py_ssize_t i = 0; i < b; i++) {
        float w = (kd[i] == 0 || kd[i] == 4) ? 1.0f : lm[i];
        int small = w < 0.5f;
        float coeff = small ? w : w - 1.0f;
        int64_t own = y[i], partner = y[p[i]];
        float *row = out + i * k;
        for (Py_ssize_t c = 0; c < k; c++) {
            float t = c == own ? on : off, q = c == partner ? on : off;
            row[c] = (small ? q : t) + coeff * (t - q);
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"paste", py_paste, METH_VARARGS,
     "paste(dst, own, src, perm, boxes, scratch, B, C, H, W, es, stream, check): box pixels "
     "from src[perm]; returns False when check found a NaN / Inf own element, else True."},
    {"resize", py_resize, METH_VARARGS,
     "resize(dst, own, src, perm, boxes, scratch, B, C, H, W, Hs, Ws, es, stream, check): "
     "src[perm] resized (nearest) into each box; returns as paste."},
    {"fill", py_fill, METH_VARARGS,
     "fill(dst, own, boxes, value, B, C, H, W, es, stream, check): each box filled with one "
     "element; returns as paste."},
    {"mask", py_mask, METH_VARARGS,
     "mask(dst, own, perm, mask, scratch, B, C, H, W, es): src[perm] where the (B, H, W) bool "
     "mask is set."},
    {"blend", py_blend, METH_VARARGS,
     "blend(dst, own, perm, weight, scratch, B, C, H, W, es, is_float, stream, check): MixUp of "
     "uint8 (float32 weights) or float32 / float64 images (weights of their dtype), (B,) "
     "partner weights; returns as paste. check (every op): float32 / float64 images out of "
     "place only."},
    {"targets", py_targets, METH_VARARGS,
     "targets(dst, labels, perm, lam, kind, B, K, on, off): (B, K) float32 mixed one-hot "
     "targets of (B,) int64 class ids with (B,) float32 lam and int64 kind."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "C kernels for mixkit's CPU box ops (optional).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
