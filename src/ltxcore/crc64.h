/* CRC-64/GO-ISO, the checksum of LTX files (Go hash/crc64 with crc64.ISO). */
#ifndef LTX_CRC64_H
#define LTX_CRC64_H
#include <stddef.h>
#include <stdint.h>

/* Same contract as Go's crc64.Update(crc, crc64.MakeTable(crc64.ISO), buf):
 * start a new checksum with crc = 0, and feed the previous result back in to continue. */
uint64_t ltx_crc64(uint64_t crc, const void *buf, size_t len);

/* CRC of A||B from crc(A), crc(B) and len(B), so separately checksummed pieces can be joined. */
uint64_t ltx_crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2);

/* Name of the implementation selected at run time ("pclmul" or "slice8"). */
const char *ltx_crc64_impl(void);

/* The portable implementation, always available (used by tests to cross-check). */
uint64_t ltx_crc64_portable(uint64_t crc, const void *buf, size_t len);

#endif
