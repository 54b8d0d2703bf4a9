/* Compaction merge and restore application. */
#ifndef LTX_MERGE_H
#define LTX_MERGE_H
#include "ltx.h"
#include "ltx_decode.h"

typedef struct ltx_source {
    ltx_read_fn fn;
    void *ctx;
} ltx_source;

/* Merge n LTX files (ascending, contiguous TXID ranges) into one: for each page the latest input that holds
 * it wins, pages past the last input's commit are dropped, every input's checksum is verified. The output
 * header takes Min/PreApply from the first input and Commit/Max/Timestamp/PostApply from the last.
 * out_flags: header flags of the output; reserved: its 20 reserved header bytes (NULL: zeros). */
int ltx_merge(const ltx_source *inputs, int n, uint32_t out_flags, const uint8_t *reserved, ltx_write_fn wfn,
              void *wctx, ltx_header *out_hdr, ltx_trailer *out_trailer, char *err, size_t errlen);

/* Restore support: decode pages from d (already started, in file or segment mode) and write the ones that
 * no later file has claimed into out_fd at (pgno-1)*page_size. `claimed` is a bitmap of pages already
 * written by later files (files are applied newest first); pages above `commit` are dropped. If out_sum is
 * not NULL, the database checksum of the pages written is XORed into it. */
typedef struct ltx_apply_stats {
    uint64_t pages_written;
    uint64_t bytes_written;
    uint64_t out_sum;
} ltx_apply_stats;

int ltx_apply(ltx_decoder *d, const ltx_header *h, int out_fd, uint32_t commit, uint64_t *claimed,
              int track_out_sum, ltx_apply_stats *stats, char *err, size_t errlen);

#endif
