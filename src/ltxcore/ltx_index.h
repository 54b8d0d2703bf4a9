/* Page index access: load the index of an LTX file from its end, without reading the pages. Used for random
 * access to one page and to cut a large file into segments that threads decode in parallel. */
#ifndef LTX_INDEX_H
#define LTX_INDEX_H
#include "ltx.h"

typedef struct ltx_index_entry {
    uint32_t pgno;
    uint32_t size;   /* frame size: page header + size field + payload */
    uint64_t offset; /* file offset of the page header */
} ltx_index_entry;

typedef struct ltx_index {
    ltx_index_entry *entries;
    size_t n;
    uint64_t index_off;      /* where the index starts (just after the end-of-pages marker) */
    uint64_t end_marker_off; /* index_off - 6 */
} ltx_index;

/* Reads the index of the LTX file in fd (file_size bytes). Checks its framing (terminator, length field,
 * entries in ascending page order, frames inside the page area); it is checked against the frames
 * themselves when they are decoded. */
int ltx_index_load(int fd, uint64_t file_size, ltx_index *out, char *err, size_t errlen);
void ltx_index_free(ltx_index *ix);
/* Position of pgno in the index, or -1. */
ptrdiff_t ltx_index_find(const ltx_index *ix, uint32_t pgno);
/* Decode one page frame read from the file at an index entry (random access, no file checksum). */
int ltx_read_page_at(int fd, const ltx_header *h, const ltx_index_entry *e, uint8_t *out, char *err,
                     size_t errlen);

#endif
