#include "ltx_pages.h"
#include "ltx_io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DB_CHUNK (1024u * 1024u)

static int pread_exact(int fd, uint8_t *buf, size_t n, uint64_t off, const char *what, uint32_t pgno, char *err,
                       size_t errlen) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            ltx_set_err(err, errlen, "read %s page %" PRIu32 ": %s", what, pgno, strerror(errno));
            return LTX_EIO;
        }
        if (r == 0) {
            ltx_set_err(err, errlen, "read %s page %" PRIu32 ": file ends at offset %" PRIu64, what, pgno, off + got);
            return LTX_ETRUNC;
        }
        got += (size_t)r;
    }
    return LTX_OK;
}

int ltx_encode_wal_pages(ltx_encoder *e, int wal_fd, int db_fd, uint32_t ps, const uint32_t *wal_pgnos,
                         const uint64_t *wal_offsets, size_t n_wal, uint32_t commit, uint32_t db_from,
                         uint32_t db_to, char *err, size_t errlen) {
    const uint32_t lock = ltx_lock_pgno(ps);
    size_t chunk_pages = DB_CHUNK / ps ? DB_CHUNK / ps : 1;
    uint8_t *buf = malloc(chunk_pages * (size_t)ps);
    if (!buf) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    if (db_to > commit) db_to = commit;
    int rc = LTX_OK;
    size_t w = 0;
    uint32_t pg = db_from; /* next database-file page to consider; 0 = none wanted */
    for (;;) {
        const int have_wal = w < n_wal && wal_pgnos[w] <= commit;
        const uint32_t nw = have_wal ? wal_pgnos[w] : 0;
        /* Database-file pages before the next WAL page, in runs read with one pread each. */
        if (db_from && pg && pg <= db_to) {
            uint32_t end = (have_wal && nw - 1 < db_to) ? nw - 1 : db_to;
            /* The lock page is never read: the file may even end there while later pages sit in the WAL. */
            if (pg == lock) { pg++; continue; }
            if (pg < lock && end >= lock) end = lock - 1;
            if (pg <= end) {
                while (pg <= end) {
                    uint32_t n = end - pg + 1 < chunk_pages ? end - pg + 1 : (uint32_t)chunk_pages;
                    rc = pread_exact(db_fd, buf, (size_t)n * ps, (uint64_t)(pg - 1) * ps, "database", pg, err,
                                     errlen);
                    for (uint32_t i = 0; rc == LTX_OK && i < n; i++) {
                        if ((rc = ltx_encoder_write_page(e, pg + i, buf + (size_t)i * ps)))
                            ltx_set_err(err, errlen, "%s", ltx_encoder_errmsg(e));
                    }
                    if (rc) goto out;
                    pg += n;
                }
                continue;
            }
        }
        if (!have_wal) break;
        if ((rc = pread_exact(wal_fd, buf, ps, wal_offsets[w] + 24, "wal", nw, err, errlen))) break;
        if ((rc = ltx_encoder_write_page(e, nw, buf))) {
            ltx_set_err(err, errlen, "%s", ltx_encoder_errmsg(e));
            break;
        }
        w++;
        if (pg && pg <= nw) pg = nw + 1; /* the WAL supplied this page */
    }
out:
    free(buf);
    return rc;
}

int ltx_checksum_pages(int wal_fd, int db_fd, uint32_t ps, const uint32_t *pgnos, const uint64_t *offsets, size_t n,
                       uint64_t *out, char *err, size_t errlen) {
    uint8_t *buf = malloc(ps);
    if (!buf) { ltx_set_err(err, errlen, "out of memory"); return LTX_ENOMEM; }
    uint64_t sum = 0;
    int rc = LTX_OK;
    for (size_t i = 0; i < n && rc == LTX_OK; i++) {
        if (offsets[i] == UINT64_MAX)
            rc = pread_exact(db_fd, buf, ps, (uint64_t)(pgnos[i] - 1) * ps, "database", pgnos[i], err, errlen);
        else
            rc = pread_exact(wal_fd, buf, ps, offsets[i] + 24, "wal", pgnos[i], err, errlen);
        if (rc == LTX_OK) sum ^= ltx_checksum_page(pgnos[i], buf, ps);
    }
    free(buf);
    *out = sum;
    return rc;
}
