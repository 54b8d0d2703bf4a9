#include "ltx_decode.h"
#include "crc64.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

enum { ST_NEW, ST_PAGES, ST_PAGES_DONE, ST_FINISHED, ST_FAILED };
enum { MODE_FILE, MODE_SEGMENT, MODE_TAIL };

struct ltx_decoder {
    ltx_read_fn read;
    void *ctx;
    uint8_t *buf;
    size_t cap, pos, len;
    int eof;
    uint64_t offset; /* file offset of buf[pos] */

    int state, mode;
    ltx_header hdr;
    uint32_t lock_pgno;
    int track_sums;
    uint64_t end_off; /* segment mode: stop here */

    uint64_t crc, hashed_len;
    uint64_t index_crc, index_len;
    uint64_t page_sum;
    uint32_t prev_pgno, n_pages;

    LZ4F_dctx *lz4f;
    char err[LTX_ERRMSG_SIZE];
};

#define FAIL(d, code, ...) do { ltx_set_err((d)->err, sizeof((d)->err), __VA_ARGS__); \
                                 (d)->state = ST_FAILED; return (code); } while (0)

ltx_decoder *ltx_decoder_new(ltx_read_fn fn, void *ctx, size_t bufsize) {
    /* The buffer grows on demand to hold one compressed page of a large page size. */
    if (bufsize < 4096) bufsize = 4096;
    ltx_decoder *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->buf = malloc(bufsize);
    if (!d->buf) { free(d); return NULL; }
    d->read = fn;
    d->ctx = ctx;
    d->cap = bufsize;
    return d;
}

void ltx_decoder_free(ltx_decoder *d) {
    if (!d) return;
    if (d->lz4f) LZ4F_freeDecompressionContext(d->lz4f);
    free(d->buf);
    free(d);
}

const char *ltx_decoder_errmsg(const ltx_decoder *d) { return d->err; }
void ltx_decoder_track_sums(ltx_decoder *d, int on) { d->track_sums = on; }
uint64_t ltx_decoder_offset(const ltx_decoder *d) { return d->offset; }

/* Make at least `need` bytes available at buf+pos. */
static int fill(ltx_decoder *d, size_t need) {
    if (d->len - d->pos >= need) return LTX_OK;
    if (need > d->cap) {
        size_t cap = d->cap * 2;
        while (cap < need) cap *= 2;
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb) FAIL(d, LTX_ENOMEM, "out of memory");
        d->buf = nb;
        d->cap = cap;
    }
    if (d->pos > 0) {
        memmove(d->buf, d->buf + d->pos, d->len - d->pos);
        d->len -= d->pos;
        d->pos = 0;
    }
    while (d->len < need) {
        if (d->eof) FAIL(d, LTX_ETRUNC, "unexpected end of file at offset %" PRIu64, d->offset + d->len);
        ptrdiff_t n = d->read(d->ctx, d->buf + d->len, d->cap - d->len);
        if (n < 0) FAIL(d, LTX_EIO, "read error at offset %" PRIu64 ": %s", d->offset + d->len, strerror(errno));
        if (n == 0) d->eof = 1;
        d->len += (size_t)n;
    }
    return LTX_OK;
}

static inline const uint8_t *take(ltx_decoder *d, size_t n) {
    const uint8_t *p = d->buf + d->pos;
    d->pos += n;
    d->offset += n;
    return p;
}

static inline void hash(ltx_decoder *d, const void *p, size_t n) {
    d->crc = ltx_crc64(d->crc, p, n);
    d->hashed_len += n;
}

static void start(ltx_decoder *d, const ltx_header *h, int mode) {
    d->hdr = *h;
    d->lock_pgno = ltx_lock_pgno(h->page_size);
    d->mode = mode;
    d->state = ST_PAGES;
    d->crc = d->hashed_len = d->index_crc = d->index_len = d->page_sum = 0;
    d->n_pages = 0;
    d->end_off = UINT64_MAX;
}

int ltx_decoder_read_header(ltx_decoder *d, ltx_header *out) {
    if (d->state != ST_NEW) FAIL(d, LTX_EINVAL, "header already read");
    int rc = fill(d, LTX_HEADER_SIZE);
    if (rc) {
        if (rc == LTX_ETRUNC) ltx_set_err(d->err, sizeof(d->err), "file too short for an LTX header (%zu bytes)", d->len);
        return rc;
    }
    const uint8_t *p = take(d, LTX_HEADER_SIZE);
    if (!ltx_header_check_magic(p)) FAIL(d, LTX_EFORMAT, "invalid LTX file: bad magic");
    ltx_header h;
    ltx_header_decode(p, &h);
    if (ltx_header_validate(&h, d->err, sizeof(d->err))) { d->state = ST_FAILED; return LTX_EFORMAT; }
    start(d, &h, MODE_FILE);
    d->prev_pgno = 0;
    hash(d, p, LTX_HEADER_SIZE);
    if (out) *out = h;
    return LTX_OK;
}

int ltx_decoder_begin_segment(ltx_decoder *d, const ltx_header *h, uint64_t start_off, uint64_t end_off,
                              uint32_t prev_pgno) {
    if (d->state != ST_NEW) FAIL(d, LTX_EINVAL, "decoder already started");
    start(d, h, MODE_SEGMENT);
    d->offset = start_off;
    d->end_off = end_off;
    d->prev_pgno = prev_pgno;
    return LTX_OK;
}

int ltx_decoder_begin_tail(ltx_decoder *d, const ltx_header *h, uint64_t end_marker_off, uint64_t prefix_crc,
                           uint64_t index_crc, uint64_t index_len, uint32_t last_pgno, uint64_t page_sum) {
    if (d->state != ST_NEW) FAIL(d, LTX_EINVAL, "decoder already started");
    start(d, h, MODE_TAIL);
    d->offset = end_marker_off;
    d->crc = prefix_crc;
    d->index_crc = index_crc;
    d->index_len = index_len;
    d->prev_pgno = last_pgno;
    d->page_sum = page_sum;
    return LTX_OK;
}

/* Decode one legacy (LZ4 frame) payload, which has no size prefix: stream it until the frame ends. */
static int decode_legacy(ltx_decoder *d, uint8_t *out, uint64_t *consumed) {
    if (!d->lz4f) {
        if (LZ4F_isError(LZ4F_createDecompressionContext(&d->lz4f, LZ4F_VERSION)))
            FAIL(d, LTX_ENOMEM, "cannot create lz4 frame context");
    } else {
        LZ4F_resetDecompressionContext(d->lz4f);
    }
    size_t produced = 0;
    *consumed = 0;
    for (;;) {
        if (d->len - d->pos == 0) {
            int rc = fill(d, 1);
            if (rc) return rc;
        }
        size_t src_n = d->len - d->pos;
        size_t dst_n = d->hdr.page_size - produced;
        size_t hint = LZ4F_decompress(d->lz4f, out + produced, &dst_n, d->buf + d->pos, &src_n, NULL);
        if (LZ4F_isError(hint))
            FAIL(d, LTX_EFORMAT, "invalid lz4 frame at offset %" PRIu64 ": %s", d->offset, LZ4F_getErrorName(hint));
        take(d, src_n);
        *consumed += src_n;
        produced += dst_n;
        if (hint == 0) break;
        if (produced == d->hdr.page_size && src_n == 0 && dst_n == 0)
            FAIL(d, LTX_EFORMAT, "lz4 frame at offset %" PRIu64 " decompresses to more than one page", d->offset);
    }
    if (produced != d->hdr.page_size)
        FAIL(d, LTX_EFORMAT, "lz4 frame decompressed to %zu bytes, expected page size %" PRIu32, produced,
             d->hdr.page_size);
    return LTX_OK;
}

static int read_page(ltx_decoder *d, uint32_t *pgno_out, uint8_t *out) {
    if (d->state == ST_PAGES_DONE || d->state == ST_FINISHED) return LTX_DONE;
    if (d->state != ST_PAGES) FAIL(d, LTX_EINVAL, "decoder not reading pages");
    if (d->mode == MODE_SEGMENT && d->offset >= d->end_off) {
        if (d->offset != d->end_off)
            FAIL(d, LTX_EFORMAT, "page index does not match page frames (frame ends at offset %" PRIu64 ")", d->offset);
        d->state = ST_PAGES_DONE;
        return LTX_DONE;
    }
    if (d->mode == MODE_TAIL) { d->state = ST_PAGES_DONE; return LTX_DONE; }

    uint64_t frame_off = d->offset;
    int rc = fill(d, LTX_PAGE_HEADER_SIZE);
    if (rc) return rc;
    const uint8_t *ph = take(d, LTX_PAGE_HEADER_SIZE);
    uint32_t pgno = ltx_be32(ph);
    uint16_t flags = ltx_be16(ph + 4);
    if (pgno == 0 && flags == 0) {
        if (d->mode == MODE_SEGMENT)
            FAIL(d, LTX_EFORMAT, "page index does not match page frames (end of pages at offset %" PRIu64 ")", frame_off);
        hash(d, ph, LTX_PAGE_HEADER_SIZE);
        d->state = ST_PAGES_DONE;
        return LTX_DONE;
    }
    if (pgno == 0) FAIL(d, LTX_EFORMAT, "invalid page header at offset %" PRIu64 ": page number 0", frame_off);
    if (flags & ~LTX_PAGE_FLAG_SIZE)
        FAIL(d, LTX_EFORMAT, "invalid page header flags 0x%04x at offset %" PRIu64, flags, frame_off);
    const ltx_header *h = &d->hdr;
    if (pgno > h->commit)
        FAIL(d, LTX_EFORMAT, "page %" PRIu32 " is beyond the database size of %" PRIu32 " pages", pgno, h->commit);
    if (pgno == d->lock_pgno) FAIL(d, LTX_EFORMAT, "file contains the lock page %" PRIu32, pgno);
    if (pgno <= d->prev_pgno)
        FAIL(d, LTX_EFORMAT, "page %" PRIu32 " out of order after page %" PRIu32, pgno, d->prev_pgno);
    if (h->min_txid == 1) {
        uint32_t want = d->prev_pgno + 1;
        if (want == d->lock_pgno) want++;
        if (pgno != want)
            FAIL(d, LTX_EFORMAT, "snapshot is missing page %" PRIu32 " (next page is %" PRIu32 ")", want, pgno);
    }
    hash(d, ph, LTX_PAGE_HEADER_SIZE);

    uint64_t frame_size;
    if (flags & LTX_PAGE_FLAG_SIZE) {
        if ((rc = fill(d, 4))) return rc;
        const uint8_t *sz = take(d, 4);
        uint32_t csize = ltx_be32(sz);
        if (csize == 0 || csize > (uint32_t)LZ4_compressBound((int)h->page_size))
            FAIL(d, LTX_EFORMAT, "invalid compressed size %" PRIu32 " for page %" PRIu32, csize, pgno);
        hash(d, sz, 4);
        if ((rc = fill(d, csize))) return rc;
        const uint8_t *src = take(d, csize);
        int n = LZ4_decompress_safe((const char *)src, (char *)out, (int)csize, (int)h->page_size);
        if (n != (int)h->page_size) {
            if (n < 0) FAIL(d, LTX_EFORMAT, "corrupt lz4 block for page %" PRIu32 " at offset %" PRIu64, pgno, frame_off);
            FAIL(d, LTX_EFORMAT, "page %" PRIu32 " decompressed to %d bytes, expected %" PRIu32, pgno, n, h->page_size);
        }
        frame_size = LTX_PAGE_HEADER_SIZE + 4 + (uint64_t)csize;
    } else {
        uint64_t consumed;
        if ((rc = decode_legacy(d, out, &consumed))) return rc;
        frame_size = LTX_PAGE_HEADER_SIZE + consumed;
    }
    hash(d, out, h->page_size);

    /* What the page index must say about this frame; compared when the index is read. */
    uint8_t ent[30];
    size_t n = ltx_put_uvarint(ent, pgno);
    n += ltx_put_uvarint(ent + n, frame_off);
    n += ltx_put_uvarint(ent + n, frame_size);
    d->index_crc = ltx_crc64(d->index_crc, ent, n);
    d->index_len += n;

    if (d->track_sums || !(h->flags & LTX_HEADER_FLAG_NO_CHECKSUM))
        d->page_sum ^= ltx_checksum_page(pgno, out, h->page_size);
    d->prev_pgno = pgno;
    d->n_pages++;
    *pgno_out = pgno;
    return LTX_OK;
}

int ltx_decoder_next_page(ltx_decoder *d, uint32_t *pgno, uint8_t *out) { return read_page(d, pgno, out); }

int ltx_decoder_skip_pages(ltx_decoder *d) {
    uint8_t *scratch = malloc(LTX_MAX_PAGE_SIZE);
    if (!scratch) FAIL(d, LTX_ENOMEM, "out of memory");
    uint32_t pgno;
    int rc;
    while ((rc = read_page(d, &pgno, scratch)) == LTX_OK) {}
    free(scratch);
    return rc == LTX_DONE ? LTX_OK : rc;
}

static int read_uvarint(ltx_decoder *d, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0, i = 0;; shift += 7, i++) {
        if (i == 10) FAIL(d, LTX_EFORMAT, "invalid page index: varint overflow at offset %" PRIu64, d->offset);
        int rc = fill(d, 1);
        if (rc) return rc;
        uint8_t b = *take(d, 1);
        d->crc = ltx_crc64(d->crc, &b, 1);
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    *v = x;
    return LTX_OK;
}

int ltx_decoder_finish(ltx_decoder *d, ltx_trailer *out) {
    int rc;
    if (d->mode == MODE_SEGMENT) FAIL(d, LTX_EINVAL, "finish() is not used in segment mode");
    if (d->mode == MODE_TAIL && d->state == ST_PAGES) {
        if ((rc = fill(d, LTX_PAGE_HEADER_SIZE))) return rc;
        const uint8_t *ph = take(d, LTX_PAGE_HEADER_SIZE);
        static const uint8_t zero[LTX_PAGE_HEADER_SIZE];
        if (memcmp(ph, zero, LTX_PAGE_HEADER_SIZE) != 0)
            FAIL(d, LTX_EFORMAT, "page index does not match page frames (no end of pages marker)");
        d->crc = ltx_crc64(d->crc, ph, LTX_PAGE_HEADER_SIZE);
        d->state = ST_PAGES_DONE;
    }
    if (d->state == ST_PAGES && (rc = ltx_decoder_skip_pages(d))) return rc;
    if (d->state != ST_PAGES_DONE) FAIL(d, LTX_EINVAL, "decoder is not at the end of the pages");

    const ltx_header *h = &d->hdr;
    if (h->min_txid == 1) {
        uint32_t want = h->commit;
        if (want == d->lock_pgno) want--;
        if (d->prev_pgno != want)
            FAIL(d, LTX_EFORMAT, "snapshot ends at page %" PRIu32 " but the database has %" PRIu32 " pages",
                 d->prev_pgno, h->commit);
    }

    /* The index must list exactly the frames that were read, in order. */
    uint64_t index_off = d->offset, idx_crc = 0, idx_len = 0;
    for (;;) {
        uint64_t start_crc_len = d->offset;
        uint64_t pgno, off, size;
        if ((rc = read_uvarint(d, &pgno))) return rc;
        if (pgno == 0) break;
        if ((rc = read_uvarint(d, &off))) return rc;
        if ((rc = read_uvarint(d, &size))) return rc;
        uint8_t ent[30];
        size_t n = ltx_put_uvarint(ent, pgno);
        n += ltx_put_uvarint(ent + n, off);
        n += ltx_put_uvarint(ent + n, size);
        if (n != d->offset - start_crc_len)
            FAIL(d, LTX_EFORMAT, "invalid page index: non-canonical entry at offset %" PRIu64, start_crc_len);
        idx_crc = ltx_crc64(idx_crc, ent, n);
        idx_len += n;
        if (idx_len > d->index_len) break;
    }
    if (idx_len != d->index_len || idx_crc != d->index_crc)
        FAIL(d, LTX_EFORMAT, "page index does not match the page frames");
    if ((rc = fill(d, 8))) return rc;
    const uint8_t *lp = take(d, 8);
    uint64_t index_len = ltx_be64(lp);
    if (index_len != d->offset - 8 - index_off)
        FAIL(d, LTX_EFORMAT, "invalid page index size: %" PRIu64 " (index is %" PRIu64 " bytes)", index_len,
             d->offset - 8 - index_off);
    d->crc = ltx_crc64(d->crc, lp, 8);

    if ((rc = fill(d, LTX_TRAILER_SIZE))) return rc;
    const uint8_t *tp = take(d, LTX_TRAILER_SIZE);
    ltx_trailer t = {ltx_be64(tp), ltx_be64(tp + 8)};
    d->crc = ltx_crc64(d->crc, tp, 8);
    /* Nothing may follow the trailer: a longer file is not what any writer produces. */
    if (d->len - d->pos == 0 && !d->eof) {
        uint8_t probe;
        ptrdiff_t n = d->read(d->ctx, &probe, 1);
        if (n < 0) FAIL(d, LTX_EIO, "read error: %s", strerror(errno));
        if (n > 0) FAIL(d, LTX_EFORMAT, "unexpected data after the trailer at offset %" PRIu64, d->offset);
        d->eof = 1;
    } else if (d->len - d->pos != 0) {
        FAIL(d, LTX_EFORMAT, "unexpected data after the trailer at offset %" PRIu64, d->offset);
    }
    if (!(t.file_checksum & LTX_CHECKSUM_FLAG))
        FAIL(d, LTX_ECHECKSUM, "invalid file checksum %016" PRIx64 " (bit 63 not set)", t.file_checksum);
    uint64_t want = d->crc | LTX_CHECKSUM_FLAG;
    if (t.file_checksum != want)
        FAIL(d, LTX_ECHECKSUM, "file checksum mismatch: stored %016" PRIx64 ", computed %016" PRIx64,
             t.file_checksum, want);
    if (h->flags & LTX_HEADER_FLAG_NO_CHECKSUM) {
        if (t.post_apply_checksum != 0)
            FAIL(d, LTX_EFORMAT, "post-apply checksum must be zero when checksums are disabled");
    } else {
        if (!(t.post_apply_checksum & LTX_CHECKSUM_FLAG))
            FAIL(d, LTX_ECHECKSUM, "invalid post-apply checksum %016" PRIx64, t.post_apply_checksum);
        if (h->min_txid == 1) {
            uint64_t sum = LTX_CHECKSUM_FLAG | d->page_sum;
            if (sum != t.post_apply_checksum)
                FAIL(d, LTX_ECHECKSUM, "database checksum mismatch: stored %016" PRIx64 ", computed %016" PRIx64,
                     t.post_apply_checksum, sum);
        }
    }
    d->state = ST_FINISHED;
    if (out) *out = t;
    return LTX_OK;
}

void ltx_decoder_segment_result(const ltx_decoder *d, ltx_segment_result *out) {
    out->crc = d->crc;
    out->hashed_len = d->hashed_len;
    out->index_crc = d->index_crc;
    out->index_len = d->index_len;
    out->page_sum = d->page_sum;
    out->end_offset = d->offset;
    out->last_pgno = d->prev_pgno;
    out->n_pages = d->n_pages;
}
