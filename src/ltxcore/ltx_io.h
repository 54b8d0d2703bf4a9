/* File-descriptor sources and sinks for the decoder/encoder, usable from any thread without the GIL. */
#ifndef LTX_IO_H
#define LTX_IO_H
#include "ltx.h"

/* Reads [off, end) of fd with pread, so several readers can share one descriptor. */
typedef struct ltx_fd_source {
    int fd;
    uint64_t off;
    uint64_t end; /* UINT64_MAX: until EOF */
} ltx_fd_source;

ptrdiff_t ltx_fd_read(void *ctx, void *buf, size_t n);

/* Appends to fd with write(); counts bytes so callers can start writeback early. */
typedef struct ltx_fd_sink {
    int fd;
    uint64_t written;
} ltx_fd_sink;

int ltx_fd_write(void *ctx, const void *buf, size_t n);
/* Write all of buf at off (pwrite loop). 0 or -1 with errno. */
int ltx_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
/* Ask the kernel to start writing back dirty pages of fd now (no-op where unsupported). */
void ltx_start_writeback(int fd);

#endif
