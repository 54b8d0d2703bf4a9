/*
 * Tests and benchmark for crc64.c (CRC-64/GO-ISO).
 *
 *   gcc -O3 -I/work/main/src/ltxcore crc64.c tests/crc64_test.c -o /tmp/crc64_test
 *   /tmp/crc64_test            # all tests + 256 MiB throughput
 *   /tmp/crc64_test --no-bench # tests only
 *   add -DLTX_CRC64_DISABLE_PCLMUL to build/test the portable-only configuration
 *
 * Exit status 0 when every check passes.
 */
#define _POSIX_C_SOURCE 199309L
#include "crc64.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned long failures;
static unsigned long checks;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        checks++;                                                            \
        if (!(cond)) {                                                       \
            if (++failures <= 20) {                                          \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);         \
                fprintf(stderr, __VA_ARGS__);                                \
                fputc('\n', stderr);                                         \
            }                                                                \
        }                                                                    \
    } while (0)

/* ---- deterministic PRNG (xorshift64*) ---- */
static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(0x2545F4914F6CDD1D);
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }
static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 56);
}

/* ---- naive reference straight from the definition: bit at a time, reflected ---- */
static uint64_t crc64_naive(uint64_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (crc >> 1) ^ UINT64_C(0xD800000000000000) : crc >> 1;
    }
    return ~crc;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- tests ---- */

static void test_check_values(void)
{
    const char *s = "123456789";
    uint64_t want = UINT64_C(0xB90956C775A41001);
    CHECK(crc64_naive(0, s, 9) == want, "naive check value %016" PRIx64, crc64_naive(0, s, 9));
    CHECK(ltx_crc64(0, s, 9) == want, "ltx_crc64 check value %016" PRIx64, ltx_crc64(0, s, 9));
    CHECK(ltx_crc64_portable(0, s, 9) == want, "portable check value");
    CHECK(ltx_crc64(0, "", 0) == 0, "empty crc must be 0");
    CHECK(ltx_crc64(0, NULL, 0) == 0, "NULL/0 crc must be 0");
    CHECK(ltx_crc64(UINT64_C(0x1234), NULL, 0) == UINT64_C(0x1234), "len 0 must return crc unchanged");
    /* Residue of CRC-64/GO-ISO: crc register after appending the (little-endian) crc is constant. */
    unsigned char m[17];
    memcpy(m, s, 9);
    for (int i = 0; i < 8; i++)
        m[9 + i] = (unsigned char)(want >> (8 * i));
    CHECK(~ltx_crc64(0, m, 17) == UINT64_C(0x5300000000000000), "residue %016" PRIx64, ~ltx_crc64(0, m, 17));
    /* A long vector through the selected (folding) path: 1000 'a' bytes, cross-checked with naive. */
    unsigned char a[1000];
    memset(a, 'a', sizeof a);
    CHECK(ltx_crc64(0, a, sizeof a) == crc64_naive(0, a, sizeof a), "1000 x 'a'");
}

static void test_all_lengths_alignments(void)
{
    enum { MAXLEN = 2048, MAXALIGN = 16 };
    unsigned char *raw = aligned_alloc(64, MAXLEN + 64 + 64); /* size must be a multiple of 64 */
    fill_random(raw, MAXLEN + 64 + 64);
    for (size_t align = 0; align < MAXALIGN; align++) {
        const unsigned char *p = raw + align;
        for (size_t len = 0; len <= MAXLEN; len++) {
            uint64_t init = (len & 1) ? rnd() : 0; /* also exercise continuing from a nonzero crc */
            uint64_t ref = crc64_naive(init, p, len);
            uint64_t fast = ltx_crc64(init, p, len);
            uint64_t port = ltx_crc64_portable(init, p, len);
            CHECK(fast == ref, "ltx_crc64 len=%zu align=%zu: %016" PRIx64 " != %016" PRIx64, len, align, fast, ref);
            CHECK(port == ref, "portable len=%zu align=%zu: %016" PRIx64 " != %016" PRIx64, len, align, port, ref);
        }
    }
    /* Special byte patterns (all zero / all ones) over the same lengths. */
    for (int pat = 0; pat < 2; pat++) {
        memset(raw, pat ? 0xff : 0x00, MAXLEN + 64 + 64);
        for (size_t len = 0; len <= MAXLEN; len += 7) {
            uint64_t ref = crc64_naive(0, raw + 3, len);
            CHECK(ltx_crc64(0, raw + 3, len) == ref, "pattern %d len=%zu", pat, len);
            CHECK(ltx_crc64_portable(0, raw + 3, len) == ref, "pattern %d len=%zu (portable)", pat, len);
        }
    }
    free(raw);
}

static void test_large_random(void)
{
    enum { MAXN = 4 << 20 };
    unsigned char *buf = malloc(MAXN + 16);
    fill_random(buf, MAXN + 16);
    for (int iter = 0; iter < 24; iter++) {
        size_t len = iter < 4 ? MAXN - (size_t)iter : rnd_below(MAXN);
        size_t off = rnd_below(16);
        uint64_t init = (iter & 1) ? rnd() : 0;
        uint64_t fast = ltx_crc64(init, buf + off, len);
        uint64_t port = ltx_crc64_portable(init, buf + off, len);
        CHECK(fast == port, "large len=%zu off=%zu: %016" PRIx64 " != %016" PRIx64, len, off, fast, port);
        if (iter < 6) {
            uint64_t ref = crc64_naive(init, buf + off, len);
            CHECK(fast == ref, "large len=%zu off=%zu vs naive", len, off);
        }
    }
    free(buf);
}

static void test_incremental(void)
{
    enum { N = 1 << 20 };
    unsigned char *buf = malloc(N);
    fill_random(buf, N);
    uint64_t whole = ltx_crc64(0, buf, N);
    CHECK(whole == ltx_crc64_portable(0, buf, N), "whole");
    for (int iter = 0; iter < 200; iter++) {
        uint64_t crc = 0, crcp = 0;
        size_t pos = 0;
        /* mix of tiny, medium and big pieces */
        while (pos < N) {
            size_t maxpiece;
            switch (rnd() % 4) {
            case 0: maxpiece = 16; break;
            case 1: maxpiece = 300; break;
            case 2: maxpiece = 5000; break;
            default: maxpiece = 200000; break;
            }
            size_t piece = rnd_below(maxpiece + 1);
            if (piece > N - pos)
                piece = N - pos;
            crc = ltx_crc64(crc, buf + pos, piece);
            crcp = ltx_crc64_portable(crcp, buf + pos, piece);
            pos += piece;
        }
        CHECK(crc == whole, "incremental iter %d", iter);
        CHECK(crcp == whole, "incremental portable iter %d", iter);
    }
    free(buf);
}

static void test_combine(void)
{
    enum { N = 1 << 18 };
    unsigned char *buf = malloc(N);
    fill_random(buf, N);

    /* random two-way splits, including empty halves */
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = iter < 1000 ? rnd_below(600) : rnd_below(N + 1);
        size_t cut = (iter % 10 == 0) ? 0 : (iter % 10 == 1) ? n : rnd_below(n + 1);
        uint64_t c1 = ltx_crc64(0, buf, cut);
        uint64_t c2 = ltx_crc64(0, buf + cut, n - cut);
        uint64_t whole = ltx_crc64(0, buf, n);
        uint64_t comb = ltx_crc64_combine(c1, c2, n - cut);
        CHECK(comb == whole, "combine n=%zu cut=%zu: %016" PRIx64 " != %016" PRIx64, n, cut, comb, whole);
    }
    /* len2 == 0 returns crc1 (crc2 of the empty string is 0) */
    CHECK(ltx_crc64_combine(UINT64_C(0xDEADBEEFCAFEBABE), 0, 0) == UINT64_C(0xDEADBEEFCAFEBABE), "len2 = 0");
    CHECK(ltx_crc64_combine(0, UINT64_C(0x1122334455667788), 12345) == UINT64_C(0x1122334455667788), "crc1 = 0 (empty A)");

    /* many-way split combined left to right */
    for (int iter = 0; iter < 50; iter++) {
        uint64_t acc = 0;
        size_t pos = 0;
        while (pos < N) {
            size_t piece = rnd_below(20000);
            if (piece > N - pos)
                piece = N - pos;
            acc = ltx_crc64_combine(acc, ltx_crc64(0, buf + pos, piece), piece);
            pos += piece;
        }
        CHECK(acc == ltx_crc64(0, buf, N), "multi-way combine iter %d", iter);
    }

    /* 1 GiB of a repeated 1 MiB random pattern: streamed vs doubled by combine vs linear combine */
    {
        const size_t P = 1 << 20;
        const int reps = 1024;
        unsigned char *pat = malloc(P);
        fill_random(pat, P);
        uint64_t cp = ltx_crc64(0, pat, P);
        uint64_t streamed = 0;
        for (int i = 0; i < reps; i++)
            streamed = ltx_crc64(streamed, pat, P);
        uint64_t linear = 0;
        for (int i = 0; i < reps; i++)
            linear = ltx_crc64_combine(linear, cp, P);
        uint64_t dbl = cp;
        uint64_t dlen = P;
        while (dlen < (uint64_t)P * reps) {
            dbl = ltx_crc64_combine(dbl, dbl, dlen);
            dlen *= 2;
        }
        CHECK(linear == streamed, "1 GiB linear combine %016" PRIx64 " != streamed %016" PRIx64, linear, streamed);
        CHECK(dbl == streamed, "1 GiB doubling combine %016" PRIx64 " != streamed %016" PRIx64, dbl, streamed);
        /* prepend a header to the GiB in one combine call with len2 = 1 GiB */
        const char *hdr = "LTX header bytes";
        uint64_t h = ltx_crc64(0, hdr, strlen(hdr));
        uint64_t streamed2 = ltx_crc64(0, hdr, strlen(hdr));
        for (int i = 0; i < reps; i++)
            streamed2 = ltx_crc64(streamed2, pat, P);
        CHECK(ltx_crc64_combine(h, streamed, (uint64_t)P * reps) == streamed2, "header + 1 GiB combine");
        printf("  1 GiB repeated pattern: crc=%016" PRIx64 " (streamed, linear combine, doubling agree)\n", streamed);
        free(pat);
    }

    /* Huge lengths (beyond what can be streamed): associativity
     * combine(combine(a,b,lb),c,lc) == combine(a, combine(b,c,lc), lb+lc),
     * and doubling 2^k vs an uneven decomposition 3*2^(k-2) + 2^(k-2). */
    for (int iter = 0; iter < 2000; iter++) {
        uint64_t a = rnd(), b = rnd(), c = rnd();
        uint64_t lb = rnd() >> (1 + rnd_below(63));
        uint64_t lc = rnd() >> (1 + rnd_below(63));
        uint64_t left = ltx_crc64_combine(ltx_crc64_combine(a, b, lb), c, lc);
        uint64_t right = ltx_crc64_combine(a, ltx_crc64_combine(b, c, lc), lb + lc);
        CHECK(left == right, "associativity lb=%" PRIu64 " lc=%" PRIu64, lb, lc);
    }
    {
        uint64_t base = ltx_crc64(0, buf, 4096);
        uint64_t d[64]; /* d[k] = crc of the 4096-byte block repeated 2^k times */
        d[0] = base;
        for (int k = 1; k < 50; k++)
            d[k] = ltx_crc64_combine(d[k - 1], d[k - 1], (uint64_t)4096 << (k - 1));
        for (int k = 3; k < 50; k++) {
            uint64_t q = (uint64_t)4096 << (k - 2); /* bytes in 2^(k-2) blocks */
            uint64_t three = ltx_crc64_combine(d[k - 1], d[k - 2], q); /* 3 * 2^(k-2) blocks */
            uint64_t four = ltx_crc64_combine(three, d[k - 2], q);
            CHECK(four == d[k], "uneven decomposition k=%d", k);
        }
    }
    free(buf);
}

/* ---- benchmark ---- */

static double bench(uint64_t (*fn)(uint64_t, const void *, size_t), const unsigned char *buf, size_t n,
                    int passes, uint64_t *out)
{
    uint64_t crc = fn(0, buf, n); /* warm-up */
    double best = 1e30;
    for (int i = 0; i < passes; i++) {
        double t0 = now_sec();
        crc = fn(crc, buf, n);
        double t = now_sec() - t0;
        if (t < best)
            best = t;
    }
    *out = crc;
    return (double)n / best / 1e9;
}

static void run_benchmarks(void)
{
    const size_t N = (size_t)256 << 20;
    unsigned char *buf = aligned_alloc(4096, N);
    fill_random(buf, N);
    uint64_t c1, c2;
    double g_fast = bench(ltx_crc64, buf, N, 5, &c1);
    double g_port = bench(ltx_crc64_portable, buf, N, 3, &c2);
    c1 = ltx_crc64(0, buf, N);
    c2 = ltx_crc64_portable(0, buf, N);
    printf("throughput on 256 MiB (best of passes, GB/s = 1e9 B/s):\n");
    printf("  ltx_crc64 [%s]: %7.2f GB/s\n", ltx_crc64_impl(), g_fast);
    printf("  ltx_crc64_portable [slice8]: %7.2f GB/s\n", g_port);
    CHECK(c1 == c2, "benchmark results differ");

    /* cache-resident sizes: many passes over a small buffer */
    static const size_t sizes[] = {64, 256, 1024, 4096, 65536, 1 << 20};
    printf("  cache-resident sizes (fast / portable, GB/s):");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t sz = sizes[i];
        size_t iters = ((size_t)64 << 20) / sz;
        double t0 = now_sec();
        uint64_t c = 0;
        for (size_t k = 0; k < iters; k++)
            c = ltx_crc64(c, buf, sz);
        double tf = now_sec() - t0;
        t0 = now_sec();
        uint64_t d = 0;
        for (size_t k = 0; k < iters; k++)
            d = ltx_crc64_portable(d, buf, sz);
        double tp = now_sec() - t0;
        CHECK(c == d, "size %zu", sz);
        printf(" %zuB %.1f/%.1f;", sz, (double)sz * iters / tf / 1e9, (double)sz * iters / tp / 1e9);
    }
    printf("\n");

    /* combine cost for worst-case (all bits set) and typical lengths */
    {
        const int iters = 200000;
        uint64_t acc = 1;
        double t0 = now_sec();
        for (int i = 0; i < iters; i++)
            acc = ltx_crc64_combine(acc | 1, (uint64_t)i, UINT64_MAX >> 1);
        double t_worst = (now_sec() - t0) / iters;
        t0 = now_sec();
        for (int i = 0; i < iters; i++)
            acc = ltx_crc64_combine(acc | 1, (uint64_t)i, (uint64_t)4096 + (uint64_t)i);
        double t_small = (now_sec() - t0) / iters;
        printf("  ltx_crc64_combine: %.0f ns (len2 = 2^63-1), %.0f ns (len2 ~ 4 KiB)  [%016" PRIx64 "]\n",
               t_worst * 1e9, t_small * 1e9, acc);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int do_bench = !(argc > 1 && strcmp(argv[1], "--no-bench") == 0);
    printf("implementation: %s\n", ltx_crc64_impl());
    test_check_values();
    printf("check values: done\n");
    test_all_lengths_alignments();
    printf("lengths 0..2048 x alignments 0..15: done\n");
    test_large_random();
    printf("large random buffers: done\n");
    test_incremental();
    printf("incremental updates: done\n");
    test_combine();
    printf("combine: done\n");
    if (do_bench)
        run_benchmarks();
    printf("%lu checks, %lu failures\n", checks, failures);
    if (failures) {
        printf("FAILED\n");
        return 1;
    }
    printf("ALL PASSED\n");
    return 0;
}
