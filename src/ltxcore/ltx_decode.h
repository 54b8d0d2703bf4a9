/* Streaming LTX decoder: header, page frames (LZ4 block and the legacy LZ4 frame form), page index,
 * trailer and file checksum. It never holds more than its read buffer and one page. A decoder can also
 * run over one segment of a file (a range of frames found through the page index) so several threads can
 * decode one large file; the caller then joins the segment checksums with ltx_crc64_combine. */
#ifndef LTX_DECODE_H
#define LTX_DECODE_H
#include "ltx.h"

typedef struct ltx_decoder ltx_decoder;

typedef struct ltx_segment_result {
    uint64_t crc;         /* CRC of the hashed bytes of this segment (starting from 0) */
    uint64_t hashed_len;  /* number of bytes covered by crc */
    uint64_t index_crc;   /* CRC of the page-index entries these frames imply */
    uint64_t index_len;
    uint64_t page_sum;    /* XOR of ltx_checksum_page over the pages (when tracking sums) */
    uint64_t end_offset;  /* file offset after the last frame read */
    uint32_t last_pgno;
    uint32_t n_pages;
} ltx_segment_result;

/* bufsize: read buffer (rounded up so one compressed page always fits). */
ltx_decoder *ltx_decoder_new(ltx_read_fn fn, void *ctx, size_t bufsize);
void ltx_decoder_free(ltx_decoder *d);
const char *ltx_decoder_errmsg(const ltx_decoder *d);

/* Whole-file mode: read and validate the header. */
int ltx_decoder_read_header(ltx_decoder *d, ltx_header *out);

/* Segment mode: the source is positioned at start_off, a frame boundary; decode frames until end_off.
 * prev_pgno is the page number of the frame before start_off (0 for the first frame). */
int ltx_decoder_begin_segment(ltx_decoder *d, const ltx_header *h, uint64_t start_off, uint64_t end_off,
                              uint32_t prev_pgno);

/* Tail mode: the source is positioned at the end marker. The arguments describe everything before it
 * (joined from the segments) so finish() can check the index and the file checksum. */
int ltx_decoder_begin_tail(ltx_decoder *d, const ltx_header *h, uint64_t end_marker_off, uint64_t prefix_crc,
                           uint64_t index_crc, uint64_t index_len, uint32_t last_pgno, uint64_t page_sum);

/* Decode the next page into out (page_size bytes). LTX_OK: a page; LTX_DONE: no more pages. */
int ltx_decoder_next_page(ltx_decoder *d, uint32_t *pgno, uint8_t *out);
/* Skip pages, still verifying them (they must be decompressed to be checksummed). */
int ltx_decoder_skip_pages(ltx_decoder *d);

/* Whole-file and tail modes: read the index and trailer, then verify the index, the file checksum and,
 * for snapshots with checksums, the database checksum. */
int ltx_decoder_finish(ltx_decoder *d, ltx_trailer *out);

void ltx_decoder_segment_result(const ltx_decoder *d, ltx_segment_result *out);
/* Compute the rolling page checksums even when the file says NoChecksum. */
void ltx_decoder_track_sums(ltx_decoder *d, int on);
/* Current file offset of the next byte to parse. */
uint64_t ltx_decoder_offset(const ltx_decoder *d);

#endif
