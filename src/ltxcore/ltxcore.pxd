# Declarations of the C core for the Cython binding (_ltxcore.pyx).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

cdef extern from "crc64.h" nogil:
    uint64_t ltx_crc64(uint64_t crc, const void *buf, size_t len)
    uint64_t ltx_crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2)
    const char *ltx_crc64_impl()
    uint64_t ltx_crc64_portable(uint64_t crc, const void *buf, size_t len)

cdef extern from "ltx.h" nogil:
    enum:
        LTX_HEADER_SIZE
        LTX_OK
        LTX_DONE
        LTX_EIO
        LTX_ETRUNC
        LTX_EFORMAT
        LTX_ECHECKSUM
        LTX_ENOMEM
        LTX_EINVAL
        LTX_ENOSPACE
        LTX_ERRMSG_SIZE
        LTX_HEADER_FLAG_NO_CHECKSUM
    ctypedef long ptrdiff_t
    ctypedef struct ltx_header:
        uint32_t flags
        uint32_t page_size
        uint32_t commit
        uint64_t min_txid
        uint64_t max_txid
        int64_t timestamp
        uint64_t pre_apply_checksum
        int64_t wal_offset
        int64_t wal_size
        uint32_t wal_salt1
        uint32_t wal_salt2
        uint64_t node_id
    ctypedef struct ltx_trailer:
        uint64_t post_apply_checksum
        uint64_t file_checksum
    ctypedef ptrdiff_t (*ltx_read_fn)(void *ctx, void *buf, size_t n)
    ctypedef int (*ltx_write_fn)(void *ctx, const void *buf, size_t n)
    uint32_t ltx_lock_pgno(uint32_t page_size)
    void ltx_header_decode(const uint8_t *buf, ltx_header *h)
    void ltx_header_encode(const ltx_header *h, uint8_t *buf)
    int ltx_header_validate(const ltx_header *h, char *err, size_t errlen)
    int ltx_header_check_magic(const uint8_t *buf)
    uint64_t ltx_checksum_page(uint32_t pgno, const uint8_t *data, uint32_t page_size)

cdef extern from "ltx_io.h" nogil:
    ctypedef struct ltx_fd_source:
        int fd
        uint64_t off
        uint64_t end
    ptrdiff_t ltx_fd_read(void *ctx, void *buf, size_t n)
    ctypedef struct ltx_fd_sink:
        int fd
        uint64_t written
    int ltx_fd_write(void *ctx, const void *buf, size_t n)

cdef extern from "ltx_decode.h" nogil:
    ctypedef struct ltx_decoder:
        pass
    ctypedef struct ltx_segment_result:
        uint64_t crc
        uint64_t hashed_len
        uint64_t index_crc
        uint64_t index_len
        uint64_t page_sum
        uint64_t end_offset
        uint32_t last_pgno
        uint32_t n_pages
    ltx_decoder *ltx_decoder_new(ltx_read_fn fn, void *ctx, size_t bufsize)
    void ltx_decoder_free(ltx_decoder *d)
    const char *ltx_decoder_errmsg(const ltx_decoder *d)
    int ltx_decoder_read_header(ltx_decoder *d, ltx_header *out)
    int ltx_decoder_begin_segment(ltx_decoder *d, const ltx_header *h, uint64_t start_off, uint64_t end_off,
                                  uint32_t prev_pgno)
    int ltx_decoder_begin_tail(ltx_decoder *d, const ltx_header *h, uint64_t end_marker_off, uint64_t prefix_crc,
                               uint64_t index_crc, uint64_t index_len, uint32_t last_pgno, uint64_t page_sum)
    int ltx_decoder_next_page(ltx_decoder *d, uint32_t *pgno, uint8_t *out)
    int ltx_decoder_skip_pages(ltx_decoder *d)
    int ltx_decoder_finish(ltx_decoder *d, ltx_trailer *out)
    void ltx_decoder_segment_result(const ltx_decoder *d, ltx_segment_result *out)
    void ltx_decoder_track_sums(ltx_decoder *d, int on)
    uint64_t ltx_decoder_offset(const ltx_decoder *d)

cdef extern from "ltx_encode.h" nogil:
    ctypedef struct ltx_encoder:
        pass
    ltx_encoder *ltx_encoder_new(ltx_write_fn fn, void *ctx, size_t bufsize)
    void ltx_encoder_free(ltx_encoder *e)
    const char *ltx_encoder_errmsg(const ltx_encoder *e)
    int ltx_encoder_write_header(ltx_encoder *e, const ltx_header *h)
    int ltx_encoder_write_page(ltx_encoder *e, uint32_t pgno, const uint8_t *data)
    int ltx_encoder_finish(ltx_encoder *e, uint64_t post_apply, ltx_trailer *out)
    uint64_t ltx_encoder_page_sum(const ltx_encoder *e)
    uint64_t ltx_encoder_bytes_written(const ltx_encoder *e)
    uint64_t ltx_encoder_hashed_len(const ltx_encoder *e)
    void ltx_encoder_track_sums(ltx_encoder *e, int on)

cdef extern from "ltx_merge.h" nogil:
    ctypedef struct ltx_source:
        ltx_read_fn fn
        void *ctx
    ctypedef struct ltx_apply_stats:
        uint64_t pages_written
        uint64_t bytes_written
        uint64_t out_sum
    int ltx_merge(const ltx_source *inputs, int n, uint32_t out_flags, const uint8_t *reserved, ltx_write_fn wfn,
                  void *wctx, ltx_header *out_hdr, ltx_trailer *out_trailer, char *err, size_t errlen)
    int ltx_apply(ltx_decoder *d, const ltx_header *h, int out_fd, uint32_t commit, uint64_t *claimed,
                  int track_out_sum, ltx_apply_stats *stats, char *err, size_t errlen)

cdef extern from "ltx_index.h" nogil:
    ctypedef struct ltx_index_entry:
        uint32_t pgno
        uint32_t size
        uint64_t offset
    ctypedef struct ltx_index:
        ltx_index_entry *entries
        size_t n
        uint64_t index_off
        uint64_t end_marker_off
    int ltx_index_load(int fd, uint64_t file_size, ltx_index *out, char *err, size_t errlen)
    void ltx_index_free(ltx_index *ix)
    ptrdiff_t ltx_index_find(const ltx_index *ix, uint32_t pgno)
    int ltx_read_page_at(int fd, const ltx_header *h, const ltx_index_entry *e, uint8_t *out, char *err,
                         size_t errlen)

cdef extern from "wal.h" nogil:
    enum:
        LTX_EPREV
    ctypedef struct ltx_wal_header:
        uint32_t magic, version, page_size, checkpoint_seq, salt1, salt2, cksum1, cksum2
    ctypedef struct ltx_wal_page:
        uint32_t pgno
        uint32_t reserved
        uint64_t offset
    ctypedef struct ltx_wal_scan:
        ltx_wal_page *pages
        size_t n_pages
        uint64_t start
        uint64_t end
        uint32_t commit
        uint32_t s0, s1
        uint64_t n_frames
        uint64_t n_commits
        uint64_t valid_end
        int limited
    int ltx_wal_header_parse(const uint8_t *buf, size_t n, ltx_wal_header *h, char *err, size_t errlen)
    void ltx_wal_checksum(int big_endian, const uint8_t *p, size_t n, uint32_t *s0, uint32_t *s1)
    int ltx_wal_scan_fd(int fd, const ltx_wal_header *h, uint64_t start_off, uint32_t salt1, uint32_t salt2,
                        uint64_t max_bytes, uint64_t end_limit, ltx_wal_scan *out, char *err, size_t errlen)
    void ltx_wal_scan_free(ltx_wal_scan *s)
    int ltx_checksum_db_fd(int fd, uint32_t page_size, uint32_t commit, uint64_t *out, char *err, size_t errlen)

cdef extern from "ltx_pages.h" nogil:
    int ltx_encode_wal_pages(ltx_encoder *e, int wal_fd, int db_fd, uint32_t page_size, const uint32_t *wal_pgnos,
                             const uint64_t *wal_offsets, size_t n_wal, uint32_t commit, uint32_t db_from,
                             uint32_t db_to, char *err, size_t errlen)
    int ltx_checksum_pages(int wal_fd, int db_fd, uint32_t page_size, const uint32_t *pgnos, const uint64_t *offsets,
                           size_t n, uint64_t *out, char *err, size_t errlen)

cdef extern from "lz4frame.h" nogil:
    ctypedef struct LZ4F_dctx:
        pass
    unsigned LZ4F_VERSION
    size_t LZ4F_createDecompressionContext(LZ4F_dctx **dctx, unsigned version)
    size_t LZ4F_freeDecompressionContext(LZ4F_dctx *dctx)
    size_t LZ4F_decompress(LZ4F_dctx *dctx, void *dst, size_t *dst_size, const void *src, size_t *src_size,
                           const void *opts)
    unsigned LZ4F_isError(size_t code)
    const char *LZ4F_getErrorName(size_t code)
