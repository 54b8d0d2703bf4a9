#include "ltx_index.h"
#include "ltx_decode.h"
#include "ltx_io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_full(int fd, uint8_t *buf, size_t n, uint64_t off) {
    ltx_fd_source src = {fd, off, off + n};
    size_t got = 0;
    while (got < n) {
        ptrdiff_t r = ltx_fd_read(&src, buf + got, n - got);
        if (r < 0) return LTX_EIO;
        if (r == 0) return LTX_ETRUNC;
        got += (size_t)r;
    }
    return LTX_OK;
}

static int uvarint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0, i = 0; i < 10; i++, shift += 7) {
        if (*pos >= n) return -1;
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *v = x; return 0; }
    }
    return -1;
}

int ltx_index_load(int fd, uint64_t file_size, ltx_index *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    const uint64_t min_size = LTX_HEADER_SIZE + LTX_PAGE_HEADER_SIZE + 1 + 8 + LTX_TRAILER_SIZE;
    if (file_size < min_size) {
        ltx_set_err(err, errlen, "file too short for an LTX file (%" PRIu64 " bytes)", file_size);
        return LTX_ETRUNC;
    }
    uint8_t lenbuf[8];
    int rc = read_full(fd, lenbuf, 8, file_size - LTX_TRAILER_SIZE - 8);
    if (rc) { ltx_set_err(err, errlen, "read index size: %s", rc == LTX_EIO ? strerror(errno) : "truncated"); return rc; }
    uint64_t index_len = ltx_be64(lenbuf);
    if (index_len == 0 || index_len > file_size - min_size + 1) {
        ltx_set_err(err, errlen, "invalid page index size: %" PRIu64, index_len);
        return LTX_EFORMAT;
    }
    uint64_t index_off = file_size - LTX_TRAILER_SIZE - 8 - index_len;
    uint8_t *raw = malloc(index_len);
    if (!raw) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    if ((rc = read_full(fd, raw, index_len, index_off))) {
        free(raw);
        ltx_set_err(err, errlen, "read index: %s", rc == LTX_EIO ? strerror(errno) : "truncated");
        return rc;
    }
    size_t cap = index_len / 3 + 1, n = 0, pos = 0;
    ltx_index_entry *e = malloc(cap * sizeof(*e));
    if (!e) { free(raw); ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    uint64_t end_marker = index_off - LTX_PAGE_HEADER_SIZE, next_off = LTX_HEADER_SIZE;
    uint32_t prev = 0;
    for (;;) {
        uint64_t pgno, off, size;
        if (uvarint(raw, index_len, &pos, &pgno)) goto bad;
        if (pgno == 0) break;
        if (uvarint(raw, index_len, &pos, &off) || uvarint(raw, index_len, &pos, &size)) goto bad;
        /* Frames are contiguous from the header to the end marker, in ascending page order. */
        if (pgno > UINT32_MAX || pgno <= prev || off != next_off || size < LTX_PAGE_HEADER_SIZE + 1 ||
            size > UINT32_MAX || off + size > end_marker)
            goto bad;
        if (n == cap) goto bad; /* cannot happen: every entry takes at least 3 bytes */
        e[n].pgno = (uint32_t)pgno;
        e[n].size = (uint32_t)size;
        e[n].offset = off;
        n++;
        prev = (uint32_t)pgno;
        next_off = off + size;
    }
    if (pos != index_len || next_off != end_marker) goto bad;
    free(raw);
    out->entries = e;
    out->n = n;
    out->index_off = index_off;
    out->end_marker_off = end_marker;
    return LTX_OK;
bad:
    free(raw);
    free(e);
    ltx_set_err(err, errlen, "invalid page index");
    return LTX_EFORMAT;
}

void ltx_index_free(ltx_index *ix) {
    free(ix->entries);
    ix->entries = NULL;
    ix->n = 0;
}

ptrdiff_t ltx_index_find(const ltx_index *ix, uint32_t pgno) {
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->entries[mid].pgno < pgno) lo = mid + 1;
        else hi = mid;
    }
    return (lo < ix->n && ix->entries[lo].pgno == pgno) ? (ptrdiff_t)lo : -1;
}

int ltx_read_page_at(int fd, const ltx_header *h, const ltx_index_entry *e, uint8_t *out, char *err,
                     size_t errlen) {
    ltx_fd_source src = {fd, e->offset, e->offset + e->size};
    ltx_decoder *d = ltx_decoder_new(ltx_fd_read, &src, e->size + 16);
    if (!d) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    uint32_t pgno = 0;
    int rc = ltx_decoder_begin_segment(d, h, e->offset, e->offset + e->size, e->pgno - 1);
    if (!rc) rc = ltx_decoder_next_page(d, &pgno, out);
    if (rc == LTX_DONE) rc = LTX_EFORMAT;
    if (!rc && pgno != e->pgno) rc = LTX_EFORMAT;
    if (rc) {
        const char *m = ltx_decoder_errmsg(d);
        ltx_set_err(err, errlen, "read page %" PRIu32 ": %s", e->pgno, m[0] ? m : "index does not match the frame");
    }
    ltx_decoder_free(d);
    return rc;
}
