/* Header (de)serialisation and validation shared by the encoder, decoder and merge. */
#include "ltx.h"
#include "crc64.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ltx_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int ltx_header_check_magic(const uint8_t buf[LTX_HEADER_SIZE]) { return memcmp(buf, "LTX1", 4) == 0; }

void ltx_header_decode(const uint8_t b[LTX_HEADER_SIZE], ltx_header *h) {
    h->flags = ltx_be32(b + 4);
    h->page_size = ltx_be32(b + 8);
    h->commit = ltx_be32(b + 12);
    h->min_txid = ltx_be64(b + 16);
    h->max_txid = ltx_be64(b + 24);
    h->timestamp = (int64_t)ltx_be64(b + 32);
    h->pre_apply_checksum = ltx_be64(b + 40);
    h->wal_offset = (int64_t)ltx_be64(b + 48);
    h->wal_size = (int64_t)ltx_be64(b + 56);
    h->wal_salt1 = ltx_be32(b + 64);
    h->wal_salt2 = ltx_be32(b + 68);
    h->node_id = ltx_be64(b + 72);
}

void ltx_header_encode(const ltx_header *h, uint8_t b[LTX_HEADER_SIZE]) {
    memset(b, 0, LTX_HEADER_SIZE);
    memcpy(b, "LTX1", 4);
    ltx_put_be32(b + 4, h->flags);
    ltx_put_be32(b + 8, h->page_size);
    ltx_put_be32(b + 12, h->commit);
    ltx_put_be64(b + 16, h->min_txid);
    ltx_put_be64(b + 24, h->max_txid);
    ltx_put_be64(b + 32, (uint64_t)h->timestamp);
    ltx_put_be64(b + 40, h->pre_apply_checksum);
    ltx_put_be64(b + 48, (uint64_t)h->wal_offset);
    ltx_put_be64(b + 56, (uint64_t)h->wal_size);
    ltx_put_be32(b + 64, h->wal_salt1);
    ltx_put_be32(b + 68, h->wal_salt2);
    ltx_put_be64(b + 72, h->node_id);
}

int ltx_header_validate(const ltx_header *h, char *err, size_t errlen) {
#define FAIL(...) do { ltx_set_err(err, errlen, __VA_ARGS__); return LTX_EFORMAT; } while (0)
    if (h->flags & ~LTX_HEADER_FLAG_NO_CHECKSUM) FAIL("invalid header flags: 0x%08" PRIx32, h->flags);
    if (!ltx_is_valid_page_size(h->page_size)) FAIL("invalid page size: %" PRIu32, h->page_size);
    if (h->min_txid == 0) FAIL("invalid min txid: 0");
    if (h->max_txid == 0) FAIL("invalid max txid: 0");
    if (h->min_txid > h->max_txid)
        FAIL("min txid %016" PRIx64 " is greater than max txid %016" PRIx64, h->min_txid, h->max_txid);
    if (h->wal_offset < 0) FAIL("invalid wal offset: %" PRId64, h->wal_offset);
    if (h->wal_size < 0) FAIL("invalid wal size: %" PRId64, h->wal_size);
    if ((h->wal_salt1 != 0 || h->wal_salt2 != 0) && h->wal_offset == 0) FAIL("wal salts set without a wal offset");
    if (h->wal_offset == 0 && h->wal_size != 0) FAIL("wal size set without a wal offset");
    int no_checksum = (h->flags & LTX_HEADER_FLAG_NO_CHECKSUM) != 0;
    if (h->min_txid == 1) {
        if (h->pre_apply_checksum != 0) FAIL("pre-apply checksum must be zero on snapshots");
    } else if (no_checksum) {
        if (h->pre_apply_checksum != 0) FAIL("pre-apply checksum must be zero when checksums are disabled");
    } else if (h->pre_apply_checksum == 0 || !(h->pre_apply_checksum & LTX_CHECKSUM_FLAG)) {
        FAIL("invalid pre-apply checksum: %016" PRIx64, h->pre_apply_checksum);
    }
    return LTX_OK;
#undef FAIL
}

uint64_t ltx_checksum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size) {
    uint8_t be[4];
    ltx_put_be32(be, pgno);
    return LTX_CHECKSUM_FLAG | ltx_crc64(ltx_crc64(0, be, 4), data, page_size);
}
