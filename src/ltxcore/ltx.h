/* LTX v3 file format: shared definitions of the C core (see docs/architecture.md).
 * Everything here is plain C with no Python API, so the Cython layer can call it without the GIL. */
#ifndef LTX_H
#define LTX_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LTX_HEADER_SIZE 100
#define LTX_RESERVED_SIZE 20 /* the header's last 20 bytes, reserved by the format */
#define LTX_TRAILER_SIZE 16
#define LTX_PAGE_HEADER_SIZE 6
#define LTX_MIN_PAGE_SIZE 512
#define LTX_MAX_PAGE_SIZE 65536
#define LTX_HEADER_FLAG_NO_CHECKSUM 0x2u
#define LTX_PAGE_FLAG_SIZE 0x1u
#define LTX_CHECKSUM_FLAG (UINT64_C(1) << 63)
#define LTX_ERRMSG_SIZE 256

/* Return codes shared by every component. Positive values are "no more items", negative are errors. */
enum {
    LTX_OK = 0,
    LTX_DONE = 1,
    LTX_EIO = -1,       /* read/write failed; errno holds the cause */
    LTX_ETRUNC = -2,    /* input ended early */
    LTX_EFORMAT = -3,   /* structurally invalid input */
    LTX_ECHECKSUM = -4, /* a checksum did not match */
    LTX_ENOMEM = -5,
    LTX_EINVAL = -6,    /* caller misuse or invalid arguments */
    LTX_ENOSPACE = -7   /* disk full while writing */
};

typedef struct ltx_header {
    uint32_t flags;
    uint32_t page_size;
    uint32_t commit;
    uint64_t min_txid;
    uint64_t max_txid;
    int64_t timestamp; /* milliseconds since the Unix epoch */
    uint64_t pre_apply_checksum;
    int64_t wal_offset;
    int64_t wal_size;
    uint32_t wal_salt1;
    uint32_t wal_salt2;
    uint64_t node_id;
} ltx_header;

typedef struct ltx_trailer {
    uint64_t post_apply_checksum;
    uint64_t file_checksum;
} ltx_trailer;

/* Pull-style byte source: returns bytes read (0 at end of input) or -1 with errno set. */
typedef ptrdiff_t (*ltx_read_fn)(void *ctx, void *buf, size_t n);
/* Push-style byte sink: returns 0 on success or -1 with errno set; must write all n bytes. */
typedef int (*ltx_write_fn)(void *ctx, const void *buf, size_t n);

/* The SQLite lock page (the page holding byte offset 1 GiB) is never stored in LTX files. */
static inline uint32_t ltx_lock_pgno(uint32_t page_size) { return (uint32_t)(0x40000000u / page_size) + 1; }

static inline int ltx_is_valid_page_size(uint32_t sz) {
    return sz >= LTX_MIN_PAGE_SIZE && sz <= LTX_MAX_PAGE_SIZE && (sz & (sz - 1)) == 0;
}

static inline uint32_t ltx_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t ltx_be16(const uint8_t *p) { return (uint16_t)(((uint16_t)p[0] << 8) | p[1]); }
static inline uint64_t ltx_be64(const uint8_t *p) { return ((uint64_t)ltx_be32(p) << 32) | ltx_be32(p + 4); }
static inline void ltx_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void ltx_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void ltx_put_be64(uint8_t *p, uint64_t v) {
    ltx_put_be32(p, (uint32_t)(v >> 32)); ltx_put_be32(p + 4, (uint32_t)v);
}

/* Go binary.AppendUvarint (LEB128). Returns bytes written (at most 10). */
static inline size_t ltx_put_uvarint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}

void ltx_header_decode(const uint8_t buf[LTX_HEADER_SIZE], ltx_header *h);
void ltx_header_encode(const ltx_header *h, uint8_t buf[LTX_HEADER_SIZE]);
/* 0 if valid (ltx Header.Validate rules plus the magic); otherwise LTX_EFORMAT and a message in err. */
int ltx_header_validate(const ltx_header *h, char *err, size_t errlen);
int ltx_header_check_magic(const uint8_t buf[LTX_HEADER_SIZE]);

/* Rolling database checksum of one page: 1<<63 | crc64(be32(pgno) || data). */
uint64_t ltx_checksum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size);

void ltx_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
