/* Page sources for writing L0 files: each page comes either from a WAL frame or from the database file.
 * Runs of database-file pages are read with one large pread each. */
#ifndef LTX_PAGES_H
#define LTX_PAGES_H
#include "ltx.h"
#include "ltx_encode.h"

/* Encode, in ascending order, every page of the sorted WAL page map (wal_pgnos/wal_offsets: frame header
 * offsets) whose pgno <= commit, plus every database-file page in [db_from, db_to] that the WAL map does
 * not hold; the lock page is skipped. Snapshot: db_from = 1, db_to = commit. Incremental: the growth pages
 * prev_commit+1..commit. */
int ltx_encode_wal_pages(ltx_encoder *e, int wal_fd, int db_fd, uint32_t page_size, const uint32_t *wal_pgnos,
                         const uint64_t *wal_offsets, size_t n_wal, uint32_t commit, uint32_t db_from,
                         uint32_t db_to, char *err, size_t errlen);

/* XOR of ltx_checksum_page over pages read from the WAL (offset = frame header offset) or, where the offset is
 * UINT64_MAX, from the database file. Returns the XOR in *out (without the flag bit). */
int ltx_checksum_pages(int wal_fd, int db_fd, uint32_t page_size, const uint32_t *pgnos, const uint64_t *offsets,
                       size_t n, uint64_t *out, char *err, size_t errlen);

#endif
