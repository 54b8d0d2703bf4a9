/* SQLite WAL reader: header, frame headers, the WAL's own checksum chain and salts. A scan returns the
 * pages of committed transactions only and stops at the first frame that is torn, stale (old salts) or
 * fails the checksum chain, the way SQLite itself decides where the valid WAL ends. */
#ifndef LTX_WAL_H
#define LTX_WAL_H
#include "ltx.h"

#define LTX_WAL_HEADER_SIZE 32
#define LTX_WAL_FRAME_HEADER_SIZE 24
#define LTX_EPREV (-20) /* the frame before the resume offset is missing or has other salts */

typedef struct ltx_wal_header {
    uint32_t magic, version, page_size, checkpoint_seq, salt1, salt2, cksum1, cksum2;
} ltx_wal_header;

typedef struct ltx_wal_page {
    uint32_t pgno;
    uint32_t reserved;
    uint64_t offset; /* file offset of the frame header of the latest committed version */
} ltx_wal_page;

typedef struct ltx_wal_scan {
    ltx_wal_page *pages; /* ascending pgno; pages above `commit` dropped */
    size_t n_pages;
    uint64_t start;      /* where the scan began */
    uint64_t end;        /* offset just past the last commit frame (== start when none) */
    uint32_t commit;     /* database size in pages after the last commit (0 when none) */
    uint32_t s0, s1;     /* checksum chain value at `end` */
    uint64_t n_frames;   /* frames belonging to committed transactions */
    uint64_t n_commits;  /* commit frames */
    uint64_t valid_end;  /* end of the last valid frame, committed or not */
    int limited;         /* stopped early because of max_bytes */
} ltx_wal_scan;

/* LTX_OK: valid header. LTX_DONE: fewer than 32 bytes or a bad header checksum (an empty WAL to SQLite).
 * LTX_EFORMAT: unknown magic, version or page size. */
int ltx_wal_header_parse(const uint8_t *buf, size_t n, ltx_wal_header *h, char *err, size_t errlen);

/* SQLite's WAL checksum over n bytes (n a multiple of 8), continuing from (*s0, *s1). */
void ltx_wal_checksum(int big_endian, const uint8_t *p, size_t n, uint32_t *s0, uint32_t *s1);

/* Scan frames from start_off (a frame boundary, >= 32) with the given salts. At 32 the chain starts from the
 * header checksum; further in, from the stored checksum of the frame just before start_off, whose salts
 * must match (LTX_EPREV otherwise). max_bytes > 0 stops at the first commit at or past that many bytes. */
/* end_limit (0: none) is a hard bound: no frame ending past it is read. Replication passes the end of
 * mxFrame from the WAL index, SQLite's own boundary of what is committed: a writer killed after writing
 * its commit frame but before updating the index leaves frames that look committed in the file, which
 * SQLite discards and overwrites. */
int ltx_wal_scan_fd(int fd, const ltx_wal_header *h, uint64_t start_off, uint32_t salt1, uint32_t salt2,
                    uint64_t max_bytes, uint64_t end_limit, ltx_wal_scan *out, char *err, size_t errlen);
void ltx_wal_scan_free(ltx_wal_scan *s);

/* Database checksum (LTX rolling checksum) of pages 1..commit of a database file, lock page skipped. */
int ltx_checksum_db_fd(int fd, uint32_t page_size, uint32_t commit, uint64_t *out, char *err, size_t errlen);

#endif
