#include "ltx_io.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

ptrdiff_t ltx_fd_read(void *ctx, void *buf, size_t n) {
    ltx_fd_source *s = ctx;
    if (s->end != UINT64_MAX) {
        if (s->off >= s->end) return 0;
        if (n > s->end - s->off) n = (size_t)(s->end - s->off);
    }
    for (;;) {
        ssize_t r = pread(s->fd, buf, n, (off_t)s->off);
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) s->off += (uint64_t)r;
        return r;
    }
}

int ltx_fd_write(void *ctx, const void *buf, size_t n) {
    ltx_fd_sink *s = ctx;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
    return 0;
}

int ltx_pwrite_all(int fd, const void *buf, size_t n, uint64_t off) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

void ltx_start_writeback(int fd) {
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
#endif
}
