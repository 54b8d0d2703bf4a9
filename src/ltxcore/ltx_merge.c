#include "ltx_merge.h"
#include "ltx_encode.h"
#include "ltx_io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MERGE_BUFSIZE (32 * 1024)
/* Read buffers of all inputs together: a merge of thousands of small L0 files (a catch-up after a long
 * outage) gets smaller buffers each (they grow on demand for a large page) instead of 32 KiB apiece. */
#define MERGE_BUF_BUDGET (8u * 1024 * 1024)

int ltx_merge(const ltx_source *inputs, int n, uint32_t out_flags, const uint8_t *reserved, ltx_write_fn wfn,
              void *wctx, ltx_header *out_hdr, ltx_trailer *out_trailer, char *err, size_t errlen) {
    if (n <= 0) { ltx_set_err(err, errlen, "no input files to merge"); return LTX_EINVAL; }
    int rc = LTX_OK;
    ltx_decoder **dec = calloc((size_t)n, sizeof(*dec));
    ltx_header *hdr = calloc((size_t)n, sizeof(*hdr));
    uint32_t *cur = calloc((size_t)n, sizeof(*cur)); /* current pgno of each input, 0 when exhausted */
    uint8_t *pages = NULL;
    ltx_encoder *enc = NULL;
    if (!dec || !hdr || !cur) { rc = LTX_ENOMEM; ltx_set_err(err, errlen, "out of memory"); goto out; }

    size_t bufsize = MERGE_BUFSIZE;
    if ((size_t)n * bufsize > MERGE_BUF_BUDGET) bufsize = MERGE_BUF_BUDGET / (size_t)n;
    for (int i = 0; i < n; i++) {
        dec[i] = ltx_decoder_new(inputs[i].fn, inputs[i].ctx, bufsize);
        if (!dec[i]) { rc = LTX_ENOMEM; ltx_set_err(err, errlen, "out of memory"); goto out; }
        if ((rc = ltx_decoder_read_header(dec[i], &hdr[i]))) {
            ltx_set_err(err, errlen, "input %d: %s", i, ltx_decoder_errmsg(dec[i]));
            goto out;
        }
        if (i > 0) {
            if (hdr[i].page_size != hdr[0].page_size) {
                rc = LTX_EFORMAT;
                ltx_set_err(err, errlen, "input %d: page size %" PRIu32 " does not match %" PRIu32, i,
                            hdr[i].page_size, hdr[0].page_size);
                goto out;
            }
            uint64_t prev_max = hdr[i - 1].max_txid;
            if (!(hdr[i].min_txid <= prev_max + 1 && hdr[i].max_txid > prev_max)) {
                rc = LTX_EFORMAT;
                ltx_set_err(err, errlen,
                            "non-contiguous transaction files: %016" PRIx64 "-%016" PRIx64 " follows %016" PRIx64
                            "-%016" PRIx64, hdr[i].min_txid, hdr[i].max_txid, hdr[i - 1].min_txid, prev_max);
                goto out;
            }
        }
    }
    const ltx_header *first = &hdr[0], *last = &hdr[n - 1];
    int out_sums = !(out_flags & LTX_HEADER_FLAG_NO_CHECKSUM);
    if (out_sums) {
        for (int i = 0; i < n; i++) {
            if (hdr[i].flags & LTX_HEADER_FLAG_NO_CHECKSUM) {
                rc = LTX_EINVAL;
                ltx_set_err(err, errlen, "input %d has no checksums but the output requires them", i);
                goto out;
            }
        }
    }
    ltx_header oh = {0};
    oh.flags = out_flags;
    oh.page_size = first->page_size;
    oh.commit = last->commit;
    oh.min_txid = first->min_txid;
    oh.max_txid = last->max_txid;
    oh.timestamp = last->timestamp;
    oh.pre_apply_checksum = out_sums ? first->pre_apply_checksum : 0;

    size_t ps = first->page_size;
    pages = malloc(ps * (size_t)n);
    enc = ltx_encoder_new(wfn, wctx, 256 * 1024);
    if (!pages || !enc) { rc = LTX_ENOMEM; ltx_set_err(err, errlen, "out of memory"); goto out; }
    if ((rc = ltx_encoder_write_header_reserved(enc, &oh, reserved))) { ltx_set_err(err, errlen, "%s", ltx_encoder_errmsg(enc)); goto out; }

    for (int i = 0; i < n; i++) {
        rc = ltx_decoder_next_page(dec[i], &cur[i], pages + ps * (size_t)i);
        if (rc == LTX_DONE) { cur[i] = 0; rc = LTX_OK; }
        if (rc) { ltx_set_err(err, errlen, "input %d: %s", i, ltx_decoder_errmsg(dec[i])); goto out; }
    }
    for (;;) {
        uint32_t min = 0;
        int win = -1;
        for (int i = 0; i < n; i++) {
            if (cur[i] && (min == 0 || cur[i] <= min)) { min = cur[i]; win = i; }
        }
        if (win < 0) break;
        if (min <= oh.commit) {
            if ((rc = ltx_encoder_write_page(enc, min, pages + ps * (size_t)win))) {
                ltx_set_err(err, errlen, "%s", ltx_encoder_errmsg(enc));
                goto out;
            }
        }
        for (int i = 0; i < n; i++) {
            if (cur[i] != min) continue;
            rc = ltx_decoder_next_page(dec[i], &cur[i], pages + ps * (size_t)i);
            if (rc == LTX_DONE) { cur[i] = 0; rc = LTX_OK; }
            if (rc) { ltx_set_err(err, errlen, "input %d: %s", i, ltx_decoder_errmsg(dec[i])); goto out; }
        }
    }
    ltx_trailer t;
    uint64_t post = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = ltx_decoder_finish(dec[i], &t))) {
            ltx_set_err(err, errlen, "input %d: %s", i, ltx_decoder_errmsg(dec[i]));
            goto out;
        }
        if (i == n - 1) post = out_sums ? t.post_apply_checksum : 0;
    }
    if ((rc = ltx_encoder_finish(enc, post, out_trailer))) {
        ltx_set_err(err, errlen, "%s", ltx_encoder_errmsg(enc));
        goto out;
    }
    if (out_hdr) *out_hdr = oh;
out:
    if (dec) for (int i = 0; i < n; i++) ltx_decoder_free(dec[i]);
    ltx_encoder_free(enc);
    free(dec);
    free(hdr);
    free(cur);
    free(pages);
    return rc;
}

#define APPLY_BATCH_BYTES (512 * 1024)
#define WRITEBACK_EVERY (32u * 1024 * 1024)

/* A run of consecutive pages waiting to be written with one pwrite. */
typedef struct {
    uint8_t *buf;
    uint32_t cap_pages, n, first;
    size_t ps;
    int fd;
    uint64_t since_writeback;
} run_t;

static int run_flush(run_t *r, ltx_apply_stats *st) {
    if (r->n == 0) return 0;
    size_t n = (size_t)r->n * r->ps;
    if (ltx_pwrite_all(r->fd, r->buf, n, (uint64_t)(r->first - 1) * r->ps) != 0) return -1;
    st->bytes_written += n;
    r->since_writeback += n;
    if (r->since_writeback >= WRITEBACK_EVERY) {
        ltx_start_writeback(r->fd);
        r->since_writeback = 0;
    }
    r->n = 0;
    return 0;
}

int ltx_apply(ltx_decoder *d, const ltx_header *h, int out_fd, uint32_t commit, uint64_t *claimed,
              int track_out_sum, ltx_apply_stats *st, char *err, size_t errlen) {
    run_t r = {0};
    r.ps = h->page_size;
    r.cap_pages = (uint32_t)(APPLY_BATCH_BYTES / r.ps);
    if (r.cap_pages < 2) r.cap_pages = 2;
    r.buf = malloc(r.ps * r.cap_pages);
    r.fd = out_fd;
    if (!r.buf) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    int rc;
    for (;;) {
        if (r.n == r.cap_pages && run_flush(&r, st)) goto write_error;
        uint8_t *slot = r.buf + (size_t)r.n * r.ps;
        uint32_t pgno;
        rc = ltx_decoder_next_page(d, &pgno, slot);
        if (rc == LTX_DONE) break;
        if (rc) { ltx_set_err(err, errlen, "%s", ltx_decoder_errmsg(d)); goto out; }
        if (pgno > commit) continue;
        uint64_t bit = UINT64_C(1) << (pgno & 63);
        if (__atomic_fetch_or(&claimed[pgno >> 6], bit, __ATOMIC_RELAXED) & bit) continue;
        if (track_out_sum) st->out_sum ^= ltx_checksum_page(pgno, slot, h->page_size);
        st->pages_written++;
        if (r.n > 0 && pgno != r.first + r.n) {
            /* The run breaks: write out the slots before this page, then move it to the front. */
            if (run_flush(&r, st)) goto write_error;
            memmove(r.buf, slot, r.ps);
        }
        if (r.n == 0) r.first = pgno;
        r.n++;
    }
    if (run_flush(&r, st)) goto write_error;
    rc = LTX_OK;
    goto out;
write_error:
    rc = (errno == ENOSPC || errno == EDQUOT) ? LTX_ENOSPACE : LTX_EIO;
    ltx_set_err(err, errlen, "write to restored database failed: %s", strerror(errno));
out:
    free(r.buf);
    return rc;
}
