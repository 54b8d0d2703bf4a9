#include "wal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAL_MAGIC_LE 0x377f0682u
#define WAL_MAGIC_BE 0x377f0683u
#define WAL_VERSION 3007000u
#define SCAN_CHUNK (1024u * 1024u)

static inline uint32_t load_word(int be, const uint8_t *p) {
    if (be) return ltx_be32(p);
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void ltx_wal_checksum(int be, const uint8_t *p, size_t n, uint32_t *s0p, uint32_t *s1p) {
    uint32_t s0 = *s0p, s1 = *s1p;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s0 += load_word(be, p + i) + s1;
        s1 += load_word(be, p + i + 4) + s0;
    }
    *s0p = s0;
    *s1p = s1;
}

int ltx_wal_header_parse(const uint8_t *b, size_t n, ltx_wal_header *h, char *err, size_t errlen) {
    if (n < LTX_WAL_HEADER_SIZE) return LTX_DONE;
    h->magic = ltx_be32(b);
    h->version = ltx_be32(b + 4);
    h->page_size = ltx_be32(b + 8);
    h->checkpoint_seq = ltx_be32(b + 12);
    h->salt1 = ltx_be32(b + 16);
    h->salt2 = ltx_be32(b + 20);
    h->cksum1 = ltx_be32(b + 24);
    h->cksum2 = ltx_be32(b + 28);
    if (h->magic != WAL_MAGIC_LE && h->magic != WAL_MAGIC_BE) {
        ltx_set_err(err, errlen, "invalid wal header magic: %08" PRIx32, h->magic);
        return LTX_EFORMAT;
    }
    if (h->version != WAL_VERSION) {
        ltx_set_err(err, errlen, "unsupported wal version: %" PRIu32, h->version);
        return LTX_EFORMAT;
    }
    if (!ltx_is_valid_page_size(h->page_size)) {
        ltx_set_err(err, errlen, "invalid wal page size: %" PRIu32, h->page_size);
        return LTX_EFORMAT;
    }
    uint32_t s0 = 0, s1 = 0;
    ltx_wal_checksum(h->magic == WAL_MAGIC_BE, b, 24, &s0, &s1);
    if (s0 != h->cksum1 || s1 != h->cksum2) return LTX_DONE;
    return LTX_OK;
}

static int read_at(int fd, uint8_t *buf, size_t n, uint64_t off, size_t *got) {
    size_t total = 0;
    while (total < n) {
        ssize_t r = pread(fd, buf + total, n - total, (off_t)(off + total));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        total += (size_t)r;
    }
    *got = total;
    return 0;
}

static int cmp_page(const void *a, const void *b) {
    const ltx_wal_page *x = a, *y = b;
    if (x->pgno != y->pgno) return x->pgno < y->pgno ? -1 : 1;
    return x->offset < y->offset ? -1 : (x->offset > y->offset);
}

static int push(ltx_wal_page **arr, size_t *n, size_t *cap, uint32_t pgno, uint64_t off) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        ltx_wal_page *na = realloc(*arr, nc * sizeof(**arr));
        if (!na) return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[*n].pgno = pgno;
    (*arr)[*n].reserved = 0;
    (*arr)[*n].offset = off;
    (*n)++;
    return 0;
}

void ltx_wal_scan_free(ltx_wal_scan *s) {
    free(s->pages);
    s->pages = NULL;
    s->n_pages = 0;
}

int ltx_wal_scan_fd(int fd, const ltx_wal_header *h, uint64_t start_off, uint32_t salt1, uint32_t salt2,
                    uint64_t max_bytes, uint64_t end_limit, ltx_wal_scan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    const uint64_t fsz = LTX_WAL_FRAME_HEADER_SIZE + (uint64_t)h->page_size;
    const int be = h->magic == WAL_MAGIC_BE;
    if (start_off < LTX_WAL_HEADER_SIZE || (start_off - LTX_WAL_HEADER_SIZE) % fsz != 0) {
        ltx_set_err(err, errlen, "wal offset %" PRIu64 " is not on a frame boundary", start_off);
        return LTX_EINVAL;
    }
    uint32_t s0, s1;
    if (start_off == LTX_WAL_HEADER_SIZE) {
        s0 = h->cksum1;
        s1 = h->cksum2;
    } else {
        uint8_t fh[LTX_WAL_FRAME_HEADER_SIZE];
        size_t got;
        if (read_at(fd, fh, sizeof(fh), start_off - fsz, &got) != 0) {
            ltx_set_err(err, errlen, "read wal: %s", strerror(errno));
            return LTX_EIO;
        }
        if (got < sizeof(fh) || ltx_be32(fh + 8) != salt1 || ltx_be32(fh + 12) != salt2) {
            ltx_set_err(err, errlen, "prev frame mismatch at wal offset %" PRIu64, start_off - fsz);
            return LTX_EPREV;
        }
        s0 = ltx_be32(fh + 16);
        s1 = ltx_be32(fh + 20);
    }
    out->start = out->end = out->valid_end = start_off;
    out->s0 = s0;
    out->s1 = s1;

    size_t chunk_frames = SCAN_CHUNK / fsz;
    if (chunk_frames < 4) chunk_frames = 4;
    uint8_t *buf = malloc(chunk_frames * fsz);
    ltx_wal_page *committed = NULL, *pending = NULL;
    size_t nc = 0, cc = 0, np = 0, cp = 0;
    int rc = LTX_OK;
    if (!buf) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }

    uint64_t off = start_off;
    int stop = 0;
    while (!stop) {
        size_t got;
        if (read_at(fd, buf, chunk_frames * fsz, off, &got) != 0) {
            ltx_set_err(err, errlen, "read wal: %s", strerror(errno));
            rc = LTX_EIO;
            goto done;
        }
        size_t nframes = got / fsz;
        if (nframes == 0) break;
        for (size_t i = 0; i < nframes; i++, off += fsz) {
            if (end_limit && off + fsz > end_limit) { stop = 1; break; }
            const uint8_t *f = buf + i * fsz;
            uint32_t pgno = ltx_be32(f), commit = ltx_be32(f + 4);
            if (pgno == 0 || ltx_be32(f + 8) != salt1 || ltx_be32(f + 12) != salt2) { stop = 1; break; }
            uint32_t c0 = s0, c1 = s1;
            ltx_wal_checksum(be, f, 8, &c0, &c1);
            ltx_wal_checksum(be, f + LTX_WAL_FRAME_HEADER_SIZE, h->page_size, &c0, &c1);
            if (c0 != ltx_be32(f + 16) || c1 != ltx_be32(f + 20)) { stop = 1; break; }
            s0 = c0;
            s1 = c1;
            out->valid_end = off + fsz;
            if (push(&pending, &np, &cp, pgno, off)) { rc = LTX_ENOMEM; goto oom; }
            if (commit != 0) {
                for (size_t k = 0; k < np; k++)
                    if (push(&committed, &nc, &cc, pending[k].pgno, pending[k].offset)) { rc = LTX_ENOMEM; goto oom; }
                out->n_frames += np;
                np = 0;
                out->commit = commit;
                out->end = off + fsz;
                out->s0 = s0;
                out->s1 = s1;
                out->n_commits++;
                if (max_bytes > 0 && out->end - start_off >= max_bytes) {
                    out->limited = 1;
                    stop = 1;
                    off += fsz;
                    break;
                }
            }
        }
        if (nframes < chunk_frames) break;
    }
    if (nc > 0) {
        /* Keep the latest committed version of each page, and only pages inside the final database size. */
        qsort(committed, nc, sizeof(*committed), cmp_page);
        size_t w = 0;
        for (size_t i = 0; i < nc; i++) {
            if (committed[i].pgno > out->commit) continue;
            if (w > 0 && committed[w - 1].pgno == committed[i].pgno) committed[w - 1] = committed[i];
            else committed[w++] = committed[i];
        }
        out->pages = committed;
        out->n_pages = w;
        committed = NULL;
    }
    goto done;
oom:
    ltx_set_err(err, errlen, "out of memory");
done:
    free(buf);
    free(pending);
    free(committed);
    return rc;
}

int ltx_checksum_db_fd(int fd, uint32_t page_size, uint32_t commit, uint64_t *out, char *err, size_t errlen) {
    const uint32_t lock = ltx_lock_pgno(page_size);
    const size_t chunk_pages = (1024u * 1024u) / page_size ? (1024u * 1024u) / page_size : 1;
    uint8_t *buf = malloc(chunk_pages * page_size);
    if (!buf) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    uint64_t sum = 0;
    int rc = LTX_OK;
    for (uint32_t pg = 1; pg <= commit;) {
        size_t want = commit - pg + 1 < chunk_pages ? commit - pg + 1 : chunk_pages;
        size_t got;
        if (read_at(fd, buf, want * page_size, (uint64_t)(pg - 1) * page_size, &got) != 0) {
            ltx_set_err(err, errlen, "read database: %s", strerror(errno));
            rc = LTX_EIO;
            break;
        }
        if (got < want * page_size) {
            ltx_set_err(err, errlen, "database is shorter than %" PRIu32 " pages", commit);
            rc = LTX_ETRUNC;
            break;
        }
        for (size_t i = 0; i < want; i++, pg++) {
            if (pg == lock) continue;
            sum ^= ltx_checksum_page(pg, buf + i * page_size, page_size);
        }
    }
    free(buf);
    *out = LTX_CHECKSUM_FLAG | sum;
    return rc;
}
