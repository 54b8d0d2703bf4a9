#include "ltx_encode.h"
#include "crc64.h"

#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

enum { ST_NEW, ST_PAGES, ST_FINISHED, ST_FAILED };

struct ltx_encoder {
    ltx_write_fn write;
    void *ctx;
    uint8_t *buf;
    size_t cap, len;
    uint64_t offset; /* file offset of buf[0] */
    int state;
    ltx_header hdr;
    uint32_t lock_pgno, prev_pgno;
    uint64_t crc;
    uint64_t hashed; /* bytes covered by crc, for ltx_encoder_hashed_len */
    uint64_t page_sum;
    int track_sums;
    uint8_t *index;
    size_t index_len, index_cap;
    void *lz4state;
    char err[LTX_ERRMSG_SIZE];
};

#define FAIL(e, code, ...) do { ltx_set_err((e)->err, sizeof((e)->err), __VA_ARGS__); \
                                 (e)->state = ST_FAILED; return (code); } while (0)

ltx_encoder *ltx_encoder_new(ltx_write_fn fn, void *ctx, size_t bufsize) {
    size_t min = 2 * (LTX_PAGE_HEADER_SIZE + 4 + (size_t)LZ4_compressBound(LTX_MAX_PAGE_SIZE));
    if (bufsize < min) bufsize = min;
    ltx_encoder *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->buf = malloc(bufsize);
    e->lz4state = malloc((size_t)LZ4_sizeofState());
    if (!e->buf || !e->lz4state) { ltx_encoder_free(e); return NULL; }
    e->write = fn;
    e->ctx = ctx;
    e->cap = bufsize;
    return e;
}

void ltx_encoder_free(ltx_encoder *e) {
    if (!e) return;
    free(e->buf);
    free(e->lz4state);
    free(e->index);
    free(e);
}

const char *ltx_encoder_errmsg(const ltx_encoder *e) { return e->err; }
uint64_t ltx_encoder_page_sum(const ltx_encoder *e) { return e->page_sum; }
uint64_t ltx_encoder_bytes_written(const ltx_encoder *e) { return e->offset + e->len; }
uint64_t ltx_encoder_hashed_len(const ltx_encoder *e) { return e->hashed; }
void ltx_encoder_track_sums(ltx_encoder *e, int on) { e->track_sums = on; }

static int flush(ltx_encoder *e) {
    if (e->len == 0) return LTX_OK;
    if (e->write(e->ctx, e->buf, e->len) != 0) {
        int nospace = (errno == ENOSPC || errno == EDQUOT);
        FAIL(e, nospace ? LTX_ENOSPACE : LTX_EIO, "write failed at offset %" PRIu64 ": %s", e->offset,
             strerror(errno));
    }
    e->offset += e->len;
    e->len = 0;
    return LTX_OK;
}

static int reserve(ltx_encoder *e, size_t n) {
    if (e->cap - e->len >= n) return LTX_OK;
    return flush(e);
}

static int append_index(ltx_encoder *e, const uint8_t *p, size_t n) {
    if (e->index_len + n > e->index_cap) {
        size_t cap = e->index_cap ? e->index_cap * 2 : 4096;
        while (cap < e->index_len + n) cap *= 2;
        uint8_t *ni = realloc(e->index, cap);
        if (!ni) FAIL(e, LTX_ENOMEM, "out of memory for the page index");
        e->index = ni;
        e->index_cap = cap;
    }
    memcpy(e->index + e->index_len, p, n);
    e->index_len += n;
    return LTX_OK;
}

int ltx_encoder_write_header(ltx_encoder *e, const ltx_header *h) {
    return ltx_encoder_write_header_reserved(e, h, NULL);
}

int ltx_encoder_write_header_reserved(ltx_encoder *e, const ltx_header *h, const uint8_t *reserved) {
    if (e->state != ST_NEW) FAIL(e, LTX_EINVAL, "header already written");
    if (ltx_header_validate(h, e->err, sizeof(e->err))) { e->state = ST_FAILED; return LTX_EFORMAT; }
    e->hdr = *h;
    e->lock_pgno = ltx_lock_pgno(h->page_size);
    uint8_t *p = e->buf + e->len;
    ltx_header_encode(h, p);
    if (reserved) memcpy(p + LTX_HEADER_SIZE - LTX_RESERVED_SIZE, reserved, LTX_RESERVED_SIZE);
    e->crc = ltx_crc64(0, p, LTX_HEADER_SIZE);
    e->hashed = LTX_HEADER_SIZE;
    e->len += LTX_HEADER_SIZE;
    e->state = ST_PAGES;
    return LTX_OK;
}

int ltx_encoder_write_page(ltx_encoder *e, uint32_t pgno, const uint8_t *data) {
    if (e->state != ST_PAGES) FAIL(e, LTX_EINVAL, "encoder is not accepting pages");
    const ltx_header *h = &e->hdr;
    if (pgno == 0) FAIL(e, LTX_EINVAL, "invalid page number 0");
    if (pgno > h->commit)
        FAIL(e, LTX_EINVAL, "page %" PRIu32 " is beyond the database size of %" PRIu32 " pages", pgno, h->commit);
    if (pgno == e->lock_pgno) FAIL(e, LTX_EINVAL, "cannot encode the lock page %" PRIu32, pgno);
    if (pgno <= e->prev_pgno)
        FAIL(e, LTX_EINVAL, "page %" PRIu32 " out of order after page %" PRIu32, pgno, e->prev_pgno);
    if (h->min_txid == 1) {
        uint32_t want = e->prev_pgno + 1;
        if (want == e->lock_pgno) want++;
        if (pgno != want) FAIL(e, LTX_EINVAL, "snapshot is missing page %" PRIu32, want);
    }
    size_t bound = (size_t)LZ4_compressBound((int)h->page_size);
    int rc = reserve(e, LTX_PAGE_HEADER_SIZE + 4 + bound);
    if (rc) return rc;
    uint64_t frame_off = e->offset + e->len;
    uint8_t *p = e->buf + e->len;
    ltx_put_be32(p, pgno);
    ltx_put_be16(p + 4, LTX_PAGE_FLAG_SIZE);
    int csize = LZ4_compress_fast_extState(e->lz4state, (const char *)data, (char *)p + 10, (int)h->page_size,
                                           (int)bound, 1);
    if (csize <= 0) FAIL(e, LTX_EINVAL, "lz4 compression failed for page %" PRIu32, pgno);
    ltx_put_be32(p + 6, (uint32_t)csize);
    e->crc = ltx_crc64(e->crc, p, 10);
    e->crc = ltx_crc64(e->crc, data, h->page_size);
    e->hashed += 10 + (uint64_t)h->page_size;
    e->len += 10 + (size_t)csize;

    uint8_t ent[30];
    size_t n = ltx_put_uvarint(ent, pgno);
    n += ltx_put_uvarint(ent + n, frame_off);
    n += ltx_put_uvarint(ent + n, 10 + (uint64_t)csize);
    if ((rc = append_index(e, ent, n))) return rc;
    if (e->track_sums || !(h->flags & LTX_HEADER_FLAG_NO_CHECKSUM))
        e->page_sum ^= ltx_checksum_page(pgno, data, h->page_size);
    e->prev_pgno = pgno;
    return LTX_OK;
}

int ltx_encoder_finish(ltx_encoder *e, uint64_t post_apply, ltx_trailer *out) {
    if (e->state != ST_PAGES) FAIL(e, LTX_EINVAL, "encoder is not accepting pages");
    const ltx_header *h = &e->hdr;
    if (h->min_txid == 1) {
        uint32_t want = h->commit;
        if (want == e->lock_pgno) want--;
        if (e->prev_pgno != want)
            FAIL(e, LTX_EINVAL, "snapshot is incomplete: last page %" PRIu32 " of %" PRIu32, e->prev_pgno, h->commit);
    }
    if (h->flags & LTX_HEADER_FLAG_NO_CHECKSUM) {
        if (post_apply != 0) FAIL(e, LTX_EINVAL, "post-apply checksum must be zero when checksums are disabled");
    } else {
        if (!(post_apply & LTX_CHECKSUM_FLAG)) FAIL(e, LTX_EINVAL, "invalid post-apply checksum %016" PRIx64, post_apply);
        if (h->commit == 0 && post_apply != LTX_CHECKSUM_FLAG)
            FAIL(e, LTX_EINVAL, "post-apply checksum of an empty database must be %016" PRIx64, LTX_CHECKSUM_FLAG);
        if (h->min_txid == 1 && post_apply != (LTX_CHECKSUM_FLAG | e->page_sum))
            FAIL(e, LTX_EINVAL, "post-apply checksum %016" PRIx64 " does not match the snapshot pages (%016" PRIx64 ")",
                 post_apply, LTX_CHECKSUM_FLAG | e->page_sum);
    }
    static const uint8_t zero[LTX_PAGE_HEADER_SIZE + 1];
    int rc;
    if ((rc = reserve(e, LTX_PAGE_HEADER_SIZE))) return rc;
    memcpy(e->buf + e->len, zero, LTX_PAGE_HEADER_SIZE);
    e->crc = ltx_crc64(e->crc, zero, LTX_PAGE_HEADER_SIZE);
    e->len += LTX_PAGE_HEADER_SIZE;

    if ((rc = append_index(e, zero, 1))) return rc; /* terminator: uvarint(0) */
    e->crc = ltx_crc64(e->crc, e->index, e->index_len);
    size_t off = 0;
    while (off < e->index_len) {
        size_t room = e->cap - e->len;
        if (room == 0) { if ((rc = flush(e))) return rc; continue; }
        size_t n = e->index_len - off < room ? e->index_len - off : room;
        memcpy(e->buf + e->len, e->index + off, n);
        e->len += n;
        off += n;
    }
    if ((rc = reserve(e, 8 + LTX_TRAILER_SIZE))) return rc;
    uint8_t *p = e->buf + e->len;
    ltx_put_be64(p, (uint64_t)e->index_len);
    ltx_put_be64(p + 8, post_apply);
    e->crc = ltx_crc64(e->crc, p, 16);
    e->hashed += LTX_PAGE_HEADER_SIZE + e->index_len + 16;
    ltx_trailer t = {post_apply, e->crc | LTX_CHECKSUM_FLAG};
    ltx_put_be64(p + 16, t.file_checksum);
    e->len += 8 + LTX_TRAILER_SIZE;
    if ((rc = flush(e))) return rc;
    e->state = ST_FINISHED;
    if (out) *out = t;
    return LTX_OK;
}
