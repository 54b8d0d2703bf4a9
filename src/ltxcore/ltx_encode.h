/* Streaming LTX encoder: header, LZ4-block page frames, page index and trailer with the CRC-64 file
 * checksum. Output goes through a write callback in large chunks; only the page index (a few bytes per
 * page) accumulates in memory. */
#ifndef LTX_ENCODE_H
#define LTX_ENCODE_H
#include "ltx.h"

typedef struct ltx_encoder ltx_encoder;

ltx_encoder *ltx_encoder_new(ltx_write_fn fn, void *ctx, size_t bufsize);
void ltx_encoder_free(ltx_encoder *e);
const char *ltx_encoder_errmsg(const ltx_encoder *e);

int ltx_encoder_write_header(ltx_encoder *e, const ltx_header *h);
/* The same, with the 20 reserved header bytes (offset 80) set to `reserved` (NULL: zeros). */
int ltx_encoder_write_header_reserved(ltx_encoder *e, const ltx_header *h, const uint8_t *reserved);
/* Pages must come in ascending order; snapshots (MinTXID 1) must contain every page but the lock page. */
int ltx_encoder_write_page(ltx_encoder *e, uint32_t pgno, const uint8_t *data);
/* Write the end marker, index and trailer. With checksums enabled, post_apply must be the database checksum
 * after this file (for snapshots it is checked against the pages written). */
int ltx_encoder_finish(ltx_encoder *e, uint64_t post_apply, ltx_trailer *out);
/* XOR of ltx_checksum_page over the pages written so far (without the flag bit). */
uint64_t ltx_encoder_page_sum(const ltx_encoder *e);
uint64_t ltx_encoder_bytes_written(const ltx_encoder *e);
/* Bytes covered by the file checksum (pages count uncompressed), for patching reserved header bytes. */
uint64_t ltx_encoder_hashed_len(const ltx_encoder *e);
void ltx_encoder_track_sums(ltx_encoder *e, int on);

#endif
