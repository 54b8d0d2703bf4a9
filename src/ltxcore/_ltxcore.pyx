# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin binding of the C core. Every loop over bytes runs in C with the GIL released; this module only
converts arguments and results. The friendly API lives in litestream.ltx and litestream.wal."""

from cpython.buffer cimport PyBUF_WRITE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.errno cimport EIO, errno
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ltxcore cimport *

from array import array

HEADER_FIELDS = ("flags", "page_size", "commit", "min_txid", "max_txid", "timestamp", "pre_apply_checksum",
                 "wal_offset", "wal_size", "wal_salt1", "wal_salt2", "node_id")
HEADER_SIZE = LTX_HEADER_SIZE
FLAG_NO_CHECKSUM = LTX_HEADER_FLAG_NO_CHECKSUM
CHECKSUM_FLAG = 1 << 63

_KINDS = {LTX_EIO: "io", LTX_ETRUNC: "truncated", LTX_EFORMAT: "format", LTX_ECHECKSUM: "checksum",
          LTX_ENOMEM: "memory", LTX_EINVAL: "invalid", LTX_ENOSPACE: "nospace", LTX_EPREV: "prev-frame"}


class LTXError(Exception):
    """A decode/encode failure. `kind` is one of: io, truncated, format, checksum, memory, invalid,
    nospace, prev-frame."""

    def __init__(self, message, kind="format"):
        super().__init__(message)
        self.kind = kind


cdef object _make_error(int rc, const char *msg):
    text = msg.decode("utf-8", "replace") if msg != NULL else ""
    return LTXError(text or "ltx error %d" % rc, _KINDS.get(rc, "format"))


cdef tuple _header_tuple(const ltx_header *h):
    return (h.flags, h.page_size, h.commit, h.min_txid, h.max_txid, h.timestamp, h.pre_apply_checksum,
            h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2, h.node_id)


cdef int _header_from(object o, ltx_header *h) except -1:
    if isinstance(o, tuple) and not hasattr(o, "page_size"):
        (h.flags, h.page_size, h.commit, h.min_txid, h.max_txid, h.timestamp, h.pre_apply_checksum,
         h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2, h.node_id) = o
    else:
        h.flags = o.flags
        h.page_size = o.page_size
        h.commit = o.commit
        h.min_txid = o.min_txid
        h.max_txid = o.max_txid
        h.timestamp = o.timestamp
        h.pre_apply_checksum = o.pre_apply_checksum
        h.wal_offset = o.wal_offset
        h.wal_size = o.wal_size
        h.wal_salt1 = o.wal_salt1
        h.wal_salt2 = o.wal_salt2
        h.node_id = o.node_id
    return 0


# ---------------------------------------------------------------------------------------------- checksums

def crc64(data, uint64_t crc=0):
    """CRC-64/ISO as Go's crc64.Update(crc, ISO table, data)."""
    cdef const uint8_t[::1] mv = data
    cdef size_t n = mv.shape[0]
    cdef const uint8_t *p = &mv[0] if n else NULL
    with nogil:
        crc = ltx_crc64(crc, p, n)
    return crc


def crc64_portable(data, uint64_t crc=0):
    cdef const uint8_t[::1] mv = data
    cdef size_t n = mv.shape[0]
    cdef const uint8_t *p = &mv[0] if n else NULL
    with nogil:
        crc = ltx_crc64_portable(crc, p, n)
    return crc


def crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2):
    return ltx_crc64_combine(crc1, crc2, len2)


def crc64_impl():
    """The CRC-64 implementation selected at run time: "pclmul" (carry-less multiply folding) or "slice8"."""
    return ltx_crc64_impl().decode()


cdef extern from "lz4.h" nogil:
    const char *LZ4_versionString()


def lz4_version():
    """The version of the liblz4 loaded at run time (e.g. "1.9.4"), for `version -verbose`."""
    return LZ4_versionString().decode()


def checksum_page(uint32_t pgno, data):
    """LTX rolling checksum of one page: 1<<63 | crc64(be32(pgno) || data)."""
    cdef const uint8_t[::1] mv = data
    cdef uint64_t r
    with nogil:
        r = ltx_checksum_page(pgno, &mv[0], <uint32_t>mv.shape[0])
    return r


def lock_pgno(uint32_t page_size):
    return ltx_lock_pgno(page_size)


def db_checksum(int fd, uint32_t page_size, uint32_t commit):
    """Database checksum of pages 1..commit of a database file (lock page skipped)."""
    cdef uint64_t out = 0
    cdef char err[256]
    cdef int rc
    err[0] = 0
    with nogil:
        rc = ltx_checksum_db_fd(fd, page_size, commit, &out, err, sizeof(err))
    if rc:
        raise _make_error(rc, err)
    return out


# ------------------------------------------------------------------------------------------------ headers

def header_decode(data):
    """Parse and validate a 100-byte LTX header. Returns the field tuple (see HEADER_FIELDS)."""
    cdef const uint8_t[::1] mv = data
    cdef ltx_header h
    cdef char err[256]
    err[0] = 0
    if mv.shape[0] < LTX_HEADER_SIZE:
        raise LTXError("file too short for an LTX header (%d bytes)" % mv.shape[0], "truncated")
    if not ltx_header_check_magic(&mv[0]):
        raise LTXError("invalid LTX file: bad magic", "format")
    ltx_header_decode(&mv[0], &h)
    if ltx_header_validate(&h, err, sizeof(err)):
        raise _make_error(LTX_EFORMAT, err)
    return _header_tuple(&h)


def header_encode(header):
    cdef ltx_header h
    cdef char err[256]
    err[0] = 0
    _header_from(header, &h)
    if ltx_header_validate(&h, err, sizeof(err)):
        raise _make_error(LTX_EFORMAT, err)
    out = PyBytes_FromStringAndSize(NULL, LTX_HEADER_SIZE)
    ltx_header_encode(&h, <uint8_t *>PyBytes_AS_STRING(out))
    return out


# ----------------------------------------------------------------------------------------- python streams

cdef class _PyStream:
    """Adapts a Python file object to the C read/write callbacks; the callbacks take the GIL."""
    cdef object obj
    cdef object exc

    def __cinit__(self, obj):
        self.obj = obj
        self.exc = None


cdef ptrdiff_t _py_read(void *ctx, void *buf, size_t n) noexcept with gil:
    cdef _PyStream s = <_PyStream>ctx
    cdef object got
    cdef Py_ssize_t k
    try:
        if hasattr(s.obj, "readinto"):
            got = s.obj.readinto(PyMemoryView_FromMemory(<char *>buf, n, PyBUF_WRITE))
            return 0 if got is None else <ptrdiff_t>got
        data = s.obj.read(n)
        k = len(data)
        if k:
            memcpy(buf, <const char *>data, k)
        return k
    except BaseException as e:
        s.exc = e
        errno = EIO
        return -1


cdef int _py_write(void *ctx, const void *buf, size_t n) noexcept with gil:
    cdef _PyStream s = <_PyStream>ctx
    try:
        s.obj.write(PyBytes_FromStringAndSize(<const char *>buf, n))
        return 0
    except BaseException as e:
        s.exc = e
        errno = EIO
        return -1


cdef object _raise_stream(_PyStream s, int rc, const char *msg):
    if s is not None and s.exc is not None:
        exc, s.exc = s.exc, None
        raise exc
    raise _make_error(rc, msg)


# ------------------------------------------------------------------------------------------------ decoder

cdef class Decoder:
    """Streaming decoder over a file descriptor (read with pread from `offset`) or a Python file object."""
    cdef ltx_decoder *d
    cdef ltx_fd_source src
    cdef _PyStream stream
    cdef ltx_header hdr
    cdef bint have_header
    cdef bint use_fd
    cdef bytes page

    def __cinit__(self, source, size_t bufsize=256 * 1024, uint64_t offset=0):
        if isinstance(source, int):
            self.use_fd = True
            self.src.fd = source
            self.src.off = offset
            self.src.end = <uint64_t>-1
            self.d = ltx_decoder_new(ltx_fd_read, &self.src, bufsize)
        else:
            self.stream = _PyStream(source)
            self.d = ltx_decoder_new(_py_read, <void *>self.stream, bufsize)
        if self.d == NULL:
            raise MemoryError()

    def __dealloc__(self):
        ltx_decoder_free(self.d)

    cdef int _fail(self, int rc) except -1:
        _raise_stream(self.stream, rc, ltx_decoder_errmsg(self.d))
        return -1

    def track_sums(self, bint on=True):
        ltx_decoder_track_sums(self.d, on)

    def read_header(self):
        cdef int rc
        if self.use_fd:
            with nogil:
                rc = ltx_decoder_read_header(self.d, &self.hdr)
        else:
            rc = ltx_decoder_read_header(self.d, &self.hdr)
        if rc:
            self._fail(rc)
        self.have_header = True
        return _header_tuple(&self.hdr)

    def next_page(self):
        """(pgno, page bytes), or None after the last page."""
        cdef uint32_t pgno = 0
        cdef int rc
        out = PyBytes_FromStringAndSize(NULL, self.hdr.page_size)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        if self.use_fd:
            with nogil:
                rc = ltx_decoder_next_page(self.d, &pgno, p)
        else:
            rc = ltx_decoder_next_page(self.d, &pgno, p)
        if rc == LTX_DONE:
            return None
        if rc:
            self._fail(rc)
        return (pgno, out)

    def finish(self):
        """Read index and trailer and verify everything; returns (post_apply_checksum, file_checksum)."""
        cdef ltx_trailer t
        cdef int rc
        if self.use_fd:
            with nogil:
                rc = ltx_decoder_finish(self.d, &t)
        else:
            rc = ltx_decoder_finish(self.d, &t)
        if rc:
            self._fail(rc)
        return (t.post_apply_checksum, t.file_checksum)

    def verify(self):
        """Decode the whole file without returning pages. Returns (header, trailer, page_sum)."""
        cdef ltx_segment_result res
        if not self.have_header:
            self.read_header()
        trailer = self.finish()
        ltx_decoder_segment_result(self.d, &res)
        return _header_tuple(&self.hdr), trailer, res.page_sum

    def __iter__(self):
        if not self.have_header:
            self.read_header()
        while True:
            item = self.next_page()
            if item is None:
                return
            yield item

    @property
    def offset(self):
        return ltx_decoder_offset(self.d)


# ------------------------------------------------------------------------------------------------ encoder

cdef class Encoder:
    """Streaming encoder to a file descriptor (written at its current position) or a Python file object."""
    cdef ltx_encoder *e
    cdef ltx_fd_sink sink
    cdef _PyStream stream
    cdef bint use_fd
    cdef uint32_t page_size

    def __cinit__(self, sink, size_t bufsize=1024 * 1024):
        if isinstance(sink, int):
            self.use_fd = True
            self.sink.fd = sink
            self.sink.written = 0
            self.e = ltx_encoder_new(ltx_fd_write, &self.sink, bufsize)
        else:
            self.stream = _PyStream(sink)
            self.e = ltx_encoder_new(_py_write, <void *>self.stream, bufsize)
        if self.e == NULL:
            raise MemoryError()

    def __dealloc__(self):
        ltx_encoder_free(self.e)

    cdef int _fail(self, int rc) except -1:
        _raise_stream(self.stream, rc, ltx_encoder_errmsg(self.e))
        return -1

    def track_sums(self, bint on=True):
        ltx_encoder_track_sums(self.e, on)

    def write_header(self, header):
        cdef ltx_header h
        _header_from(header, &h)
        cdef int rc = ltx_encoder_write_header(self.e, &h)
        if rc:
            self._fail(rc)
        self.page_size = h.page_size

    def write_page(self, uint32_t pgno, data):
        cdef const uint8_t[::1] mv = data
        cdef int rc
        if <uint32_t>mv.shape[0] != self.page_size:
            raise LTXError("page %d has %d bytes, expected %d" % (pgno, mv.shape[0], self.page_size), "invalid")
        if self.use_fd:
            with nogil:
                rc = ltx_encoder_write_page(self.e, pgno, &mv[0])
        else:
            rc = ltx_encoder_write_page(self.e, pgno, &mv[0])
        if rc:
            self._fail(rc)

    def write_pages_from_fd(self, int fd, uint32_t first_pgno, uint32_t count, uint32_t skip_pgno=0):
        """Encode `count` consecutive pages read from a database file, starting at first_pgno
        (file offset (first_pgno-1)*page_size). skip_pgno (e.g. the lock page) is not encoded."""
        if not self.use_fd:
            raise LTXError("write_pages_from_fd needs a file descriptor sink", "invalid")
        cdef size_t ps = self.page_size
        cdef size_t chunk = (1 << 20) // ps if ps < (1 << 20) else 1
        cdef uint8_t *buf = <uint8_t *>malloc(chunk * ps)
        cdef ltx_fd_source src
        cdef uint32_t pg = first_pgno, end = first_pgno + count, i, n
        cdef ptrdiff_t got
        cdef size_t have
        cdef int rc = 0
        cdef bint short = False
        if buf == NULL:
            raise MemoryError()
        src.fd = fd
        src.off = (first_pgno - 1) * <uint64_t>ps
        src.end = <uint64_t>-1
        try:
            with nogil:
                while pg < end and rc == 0:
                    n = <uint32_t>chunk if end - pg > chunk else end - pg
                    have = 0
                    while have < n * ps:
                        got = ltx_fd_read(&src, buf + have, n * ps - have)
                        if got <= 0:
                            break
                        have += got
                    if have < n * ps:
                        short = True
                        break
                    for i in range(n):
                        if pg + i != skip_pgno:
                            rc = ltx_encoder_write_page(self.e, pg + i, buf + i * ps)
                            if rc:
                                break
                    pg += n
            if short:
                raise LTXError("database file ended before page %d" % pg, "truncated")
            if rc:
                self._fail(rc)
        finally:
            free(buf)

    def finish(self, uint64_t post_apply=0):
        cdef ltx_trailer t
        cdef int rc
        if self.use_fd:
            with nogil:
                rc = ltx_encoder_finish(self.e, post_apply, &t)
        else:
            rc = ltx_encoder_finish(self.e, post_apply, &t)
        if rc:
            self._fail(rc)
        return (t.post_apply_checksum, t.file_checksum)

    def write_wal_pages(self, int wal_fd, int db_fd, wal_pgnos, wal_offsets, uint32_t commit, uint32_t db_from=0,
                        uint32_t db_to=0):
        """Encode the WAL page map (sorted pgnos, frame offsets) up to `commit`, plus database-file pages
        db_from..db_to the map does not hold (db_from 0: none). The lock page is skipped."""
        if not self.use_fd:
            raise LTXError("write_wal_pages needs a file descriptor sink", "invalid")
        cdef const uint32_t[::1] pg = wal_pgnos
        cdef const uint64_t[::1] off = wal_offsets
        cdef size_t n = pg.shape[0]
        cdef char err[256]
        cdef int rc
        if <size_t>off.shape[0] != n:
            raise LTXError("page numbers and offsets differ in length", "invalid")
        err[0] = 0
        with nogil:
            rc = ltx_encode_wal_pages(self.e, wal_fd, db_fd, self.page_size, &pg[0] if n else NULL,
                                      &off[0] if n else NULL, n, commit, db_from, db_to, err, sizeof(err))
        if rc:
            raise _make_error(rc, err)

    @property
    def page_sum(self):
        return ltx_encoder_page_sum(self.e)

    @property
    def hashed_len(self):
        return ltx_encoder_hashed_len(self.e)

    @property
    def bytes_written(self):
        return ltx_encoder_bytes_written(self.e)


def checksum_pages(int wal_fd, int db_fd, uint32_t page_size, pgnos, offsets):
    """XOR of page checksums (without the flag bit) of pages read from WAL frames (offset = frame header
    offset) or, where the offset is 2**64-1, from the database file."""
    cdef const uint32_t[::1] pg = pgnos
    cdef const uint64_t[::1] off = offsets
    cdef size_t n = pg.shape[0]
    cdef uint64_t out = 0
    cdef char err[256]
    cdef int rc
    if n == 0:
        return 0
    err[0] = 0
    with nogil:
        rc = ltx_checksum_pages(wal_fd, db_fd, page_size, &pg[0], &off[0], n, &out, err, sizeof(err))
    if rc:
        raise _make_error(rc, err)
    return out


def patch_reserved(int fd, reserved, uint64_t hashed_len):
    """Rewrite the 20 reserved header bytes (offset 80) of a finished LTX file and fix its file checksum.
    The checksum is affine in the data, so the change is applied in O(log n) with crc64_combine instead
    of re-reading the file."""
    import os

    cdef bytes new_res = bytes(reserved)
    if len(new_res) != 20:
        raise LTXError("reserved area is 20 bytes", "invalid")
    old_hdr = os.pread(fd, LTX_HEADER_SIZE, 0)
    size = os.fstat(fd).st_size
    stored = int.from_bytes(os.pread(fd, 8, size - 8), "big")
    new_hdr = old_hdr[:80] + new_res
    delta = ltx_crc64(0, <const char *>new_hdr, LTX_HEADER_SIZE) ^ ltx_crc64(0, <const char *>old_hdr,
                                                                               LTX_HEADER_SIZE)
    delta = ltx_crc64_combine(delta, 0, hashed_len - LTX_HEADER_SIZE)
    os.pwrite(fd, new_res, 80)
    os.pwrite(fd, ((stored ^ delta) | CHECKSUM_FLAG).to_bytes(8, "big"), size - 8)


# -------------------------------------------------------------------------------------------------- merge

def merge(list inputs, out, uint32_t flags=LTX_HEADER_FLAG_NO_CHECKSUM, reserved=None):
    """Merge LTX files (fds or file objects, ascending TXIDs) into `out` (fd or file object), with the
    output header's 20 reserved bytes set to `reserved` (None: zeros). Returns (header, trailer)."""
    cdef int n = len(inputs), i, rc
    cdef ltx_source *srcs = <ltx_source *>malloc(sizeof(ltx_source) * max(n, 1))
    cdef ltx_fd_source *fds = <ltx_fd_source *>malloc(sizeof(ltx_fd_source) * max(n, 1))
    cdef ltx_fd_sink sink
    cdef ltx_header oh
    cdef ltx_trailer ot
    cdef char err[256]
    cdef bint all_fd = isinstance(out, int)
    cdef ltx_write_fn wfn
    cdef void *wctx
    cdef _PyStream ostream = None
    cdef const uint8_t *res = NULL
    cdef bytes res_bytes = None
    keep = []
    err[0] = 0
    if reserved is not None:
        res_bytes = bytes(reserved)
        if len(res_bytes) != 20:
            raise LTXError("reserved area is 20 bytes", "invalid")
        res = <const uint8_t *>res_bytes
    if srcs == NULL or fds == NULL:
        free(srcs)
        free(fds)
        raise MemoryError()
    try:
        for i in range(n):
            src = inputs[i]
            if isinstance(src, int):
                fds[i].fd = src
                fds[i].off = 0
                fds[i].end = <uint64_t>-1
                srcs[i].fn = ltx_fd_read
                srcs[i].ctx = &fds[i]
            else:
                all_fd = False
                st = _PyStream(src)
                keep.append(st)
                srcs[i].fn = _py_read
                srcs[i].ctx = <void *>st
        if isinstance(out, int):
            sink.fd = out
            sink.written = 0
            wfn = ltx_fd_write
            wctx = &sink
        else:
            ostream = _PyStream(out)
            wfn = _py_write
            wctx = <void *>ostream
        if all_fd:
            with nogil:
                rc = ltx_merge(srcs, n, flags, res, wfn, wctx, &oh, &ot, err, sizeof(err))
        else:
            rc = ltx_merge(srcs, n, flags, res, wfn, wctx, &oh, &ot, err, sizeof(err))
        if rc:
            for st in keep:
                if (<_PyStream>st).exc is not None:
                    raise (<_PyStream>st).exc
            _raise_stream(ostream, rc, err)
        return _header_tuple(&oh), (ot.post_apply_checksum, ot.file_checksum)
    finally:
        free(srcs)
        free(fds)


# ------------------------------------------------------------------------------------------------ restore

def new_claim_map(uint32_t commit):
    """Bitmap of pages already written during a restore (one bit per page)."""
    return array("Q", bytes(8 * ((commit >> 6) + 1)))


def claimed_missing(claimed, uint32_t commit, uint32_t lock):
    """First page in 1..commit (lock page excepted) not written, or 0 when the database is complete."""
    cdef uint64_t[::1] bm = claimed
    cdef uint32_t p
    with nogil:
        for p in range(1, commit + 1):
            if p != lock and not (bm[p >> 6] >> (p & 63)) & 1:
                break
        else:
            p = 0
    return p


def apply_file(int fd, expected_header, int out_fd, uint32_t commit, claimed, bint track_sum=False,
               size_t bufsize=1024 * 1024):
    """Decode a whole LTX file from fd and write the pages no later file has claimed into out_fd.
    The header must equal expected_header (read while planning). Returns
    (trailer, page_sum, pages_written, bytes_written, out_sum)."""
    cdef ltx_fd_source src
    cdef ltx_header h, want
    cdef ltx_trailer t
    cdef ltx_apply_stats st
    cdef ltx_segment_result res
    cdef uint64_t[::1] bm = claimed
    cdef char err[256]
    cdef int rc
    cdef ltx_decoder *d
    err[0] = 0
    st.pages_written = st.bytes_written = st.out_sum = 0
    _header_from(expected_header, &want)
    src.fd = fd
    src.off = 0
    src.end = <uint64_t>-1
    d = ltx_decoder_new(ltx_fd_read, &src, bufsize)
    if d == NULL:
        raise MemoryError()
    try:
        with nogil:
            rc = ltx_decoder_read_header(d, &h)
            if rc == 0 and (h.page_size != want.page_size or h.min_txid != want.min_txid
                            or h.max_txid != want.max_txid or h.commit != want.commit):
                rc = LTX_EFORMAT
            elif rc == 0:
                rc = ltx_apply(d, &h, out_fd, commit, &bm[0], track_sum, &st, err, sizeof(err))
                if rc == 0:
                    rc = ltx_decoder_finish(d, &t)
                    if rc:
                        err[0] = 0
        if rc:
            if err[0] == 0:
                msg = ltx_decoder_errmsg(d).decode("utf-8", "replace")
                if not msg:
                    msg = "header changed since the restore was planned"
                raise LTXError(msg, _KINDS.get(rc, "format"))
            raise _make_error(rc, err)
        ltx_decoder_segment_result(d, &res)
        return ((t.post_apply_checksum, t.file_checksum), res.page_sum, st.pages_written, st.bytes_written,
                st.out_sum)
    finally:
        ltx_decoder_free(d)


def apply_segment(int fd, header, uint64_t start, uint64_t end, uint32_t prev_pgno, int out_fd,
                  uint32_t commit, claimed, bint track_sum=False, size_t bufsize=1024 * 1024):
    """Decode the frames in [start, end) of an LTX file and apply them like apply_file. Returns
    (crc, hashed_len, index_crc, index_len, page_sum, last_pgno, n_pages, pages_written, bytes_written,
    out_sum) so the caller can join the segments and verify the file with finish_tail()."""
    cdef ltx_fd_source src
    cdef ltx_header h
    cdef ltx_apply_stats st
    cdef ltx_segment_result res
    cdef uint64_t[::1] bm = claimed
    cdef char err[256]
    cdef int rc
    cdef ltx_decoder *d
    err[0] = 0
    st.pages_written = st.bytes_written = st.out_sum = 0
    _header_from(header, &h)
    src.fd = fd
    src.off = start
    src.end = end
    d = ltx_decoder_new(ltx_fd_read, &src, bufsize)
    if d == NULL:
        raise MemoryError()
    try:
        with nogil:
            rc = ltx_decoder_begin_segment(d, &h, start, end, prev_pgno)
            if rc == 0:
                rc = ltx_apply(d, &h, out_fd, commit, &bm[0], track_sum, &st, err, sizeof(err))
        if rc:
            if err[0]:
                raise _make_error(rc, err)
            raise _make_error(rc, ltx_decoder_errmsg(d))
        ltx_decoder_segment_result(d, &res)
        return (res.crc, res.hashed_len, res.index_crc, res.index_len, res.page_sum, res.last_pgno,
                res.n_pages, st.pages_written, st.bytes_written, st.out_sum)
    finally:
        ltx_decoder_free(d)


def finish_tail(int fd, header, uint64_t end_marker_off, uint64_t prefix_crc, uint64_t index_crc,
                uint64_t index_len, uint32_t last_pgno, uint64_t page_sum):
    """Verify the end marker, index and trailer of a file decoded in segments. Returns the trailer."""
    cdef ltx_fd_source src
    cdef ltx_header h
    cdef ltx_trailer t
    cdef int rc
    cdef ltx_decoder *d
    _header_from(header, &h)
    src.fd = fd
    src.off = end_marker_off
    src.end = <uint64_t>-1
    d = ltx_decoder_new(ltx_fd_read, &src, 64 * 1024)
    if d == NULL:
        raise MemoryError()
    try:
        with nogil:
            rc = ltx_decoder_begin_tail(d, &h, end_marker_off, prefix_crc, index_crc, index_len, last_pgno,
                                        page_sum)
            if rc == 0:
                rc = ltx_decoder_finish(d, &t)
        if rc:
            raise _make_error(rc, ltx_decoder_errmsg(d))
        return (t.post_apply_checksum, t.file_checksum)
    finally:
        ltx_decoder_free(d)


cdef class PageIndex:
    """The page index of one LTX file, loaded from the end of the file."""
    cdef ltx_index ix

    def __cinit__(self, int fd, uint64_t file_size):
        cdef char err[256]
        cdef int rc
        err[0] = 0
        with nogil:
            rc = ltx_index_load(fd, file_size, &self.ix, err, sizeof(err))
        if rc:
            raise _make_error(rc, err)

    def __dealloc__(self):
        ltx_index_free(&self.ix)

    def __len__(self):
        return self.ix.n

    @property
    def end_marker_offset(self):
        return self.ix.end_marker_off

    @property
    def last_pgno(self):
        return self.ix.entries[self.ix.n - 1].pgno if self.ix.n else 0

    def pgnos(self):
        return array("I", [self.ix.entries[i].pgno for i in range(self.ix.n)])

    def find(self, uint32_t pgno):
        """(offset, size) of the frame holding pgno, or None."""
        cdef ptrdiff_t i = ltx_index_find(&self.ix, pgno)
        if i < 0:
            return None
        return (self.ix.entries[i].offset, self.ix.entries[i].size)

    def segments(self, uint64_t target_bytes):
        """Cut the page frames into runs of about target_bytes: [(start, end, prev_pgno), ...]."""
        out = []
        cdef size_t i
        cdef uint64_t start = 100, acc = 0
        cdef uint32_t prev = 0, start_prev = 0
        for i in range(self.ix.n):
            if acc >= target_bytes:
                out.append((start, self.ix.entries[i].offset, start_prev))
                start = self.ix.entries[i].offset
                start_prev = prev
                acc = 0
            acc += self.ix.entries[i].size
            prev = self.ix.entries[i].pgno
        out.append((start, self.ix.end_marker_off, start_prev))
        return out

    def read_page(self, int fd, header, uint32_t pgno):
        """Decode one page through the index (random access; the file checksum is not verified)."""
        cdef ltx_header h
        cdef char err[256]
        cdef int rc
        cdef ptrdiff_t i = ltx_index_find(&self.ix, pgno)
        if i < 0:
            raise KeyError(pgno)
        _header_from(header, &h)
        out = PyBytes_FromStringAndSize(NULL, h.page_size)
        cdef uint8_t *p = <uint8_t *>PyBytes_AS_STRING(out)
        err[0] = 0
        with nogil:
            rc = ltx_read_page_at(fd, &h, &self.ix.entries[i], p, err, sizeof(err))
        if rc:
            raise _make_error(rc, err)
        return out


# ---------------------------------------------------------------------------------------------------- WAL

WAL_HEADER_FIELDS = ("magic", "version", "page_size", "checkpoint_seq", "salt1", "salt2", "cksum1", "cksum2")


class PrevFrameMismatch(LTXError):
    pass


def wal_header_parse(data):
    """Field tuple (see WAL_HEADER_FIELDS) of a valid WAL header; None when the WAL is empty to SQLite
    (short or bad header checksum). Raises LTXError for an unknown magic or version."""
    cdef const uint8_t[::1] mv = data
    cdef ltx_wal_header h
    cdef char err[256]
    err[0] = 0
    if mv.shape[0] < 32:
        return None
    cdef int rc = ltx_wal_header_parse(&mv[0], mv.shape[0], &h, err, sizeof(err))
    if rc == LTX_DONE:
        return None
    if rc:
        raise _make_error(rc, err)
    return (h.magic, h.version, h.page_size, h.checkpoint_seq, h.salt1, h.salt2, h.cksum1, h.cksum2)


def wal_checksum(data, bint big_endian, uint32_t s0=0, uint32_t s1=0):
    cdef const uint8_t[::1] mv = data
    ltx_wal_checksum(big_endian, &mv[0] if mv.shape[0] else NULL, mv.shape[0], &s0, &s1)
    return (s0, s1)


def wal_scan(int fd, header, uint64_t start, uint32_t salt1, uint32_t salt2, uint64_t max_bytes=0,
             uint64_t end_limit=0):
    """Scan committed frames from `start` (no frame ending past end_limit, when non-zero). Returns a dict
    with pgnos (array 'I'), offsets (array 'Q') of the latest committed frame of each page, and
    start/end/commit/s0/s1/n_frames/n_commits/valid_end/limited."""
    cdef ltx_wal_header h
    cdef ltx_wal_scan s
    cdef char err[256]
    cdef int rc
    cdef size_t i
    err[0] = 0
    (h.magic, h.version, h.page_size, h.checkpoint_seq, h.salt1, h.salt2, h.cksum1, h.cksum2) = header
    with nogil:
        rc = ltx_wal_scan_fd(fd, &h, start, salt1, salt2, max_bytes, end_limit, &s, err, sizeof(err))
    if rc == LTX_EPREV:
        raise PrevFrameMismatch(err.decode("utf-8", "replace"), "prev-frame")
    if rc:
        raise _make_error(rc, err)
    try:
        pgnos = array("I", bytes(4 * s.n_pages))
        offsets = array("Q", bytes(8 * s.n_pages))
        for i in range(s.n_pages):
            pgnos[i] = s.pages[i].pgno
            offsets[i] = s.pages[i].offset
        return {"pgnos": pgnos, "offsets": offsets, "start": s.start, "end": s.end, "commit": s.commit,
                "s0": s.s0, "s1": s.s1, "n_frames": s.n_frames, "n_commits": s.n_commits,
                "valid_end": s.valid_end, "limited": bool(s.limited)}
    finally:
        ltx_wal_scan_free(&s)


# ------------------------------------------------------------------------------------------ LZ4 frames

cdef class LZ4FrameDecoder:
    """Streaming decoder of one LZ4 frame (v0.3.x snapshots and WAL segments), on the system liblz4:
    feed it chunks of the compressed object, get the decompressed bytes back; `finished` once the frame's
    end mark (and checksum, when the frame has one) was read."""
    cdef LZ4F_dctx *d
    cdef readonly bint finished

    def __cinit__(self):
        if LZ4F_isError(LZ4F_createDecompressionContext(&self.d, LZ4F_VERSION)):
            raise MemoryError()
        self.finished = False

    def __dealloc__(self):
        if self.d != NULL:
            LZ4F_freeDecompressionContext(self.d)

    def decompress(self, data):
        cdef const uint8_t[::1] src = data
        cdef size_t pos = 0, n = src.shape[0], src_n, dst_n, hint = 1
        cdef size_t cap = 1 << 20
        cdef bytearray out = bytearray()
        cdef bytearray buf = bytearray(cap)
        cdef uint8_t *dst = buf
        if self.finished and n:
            raise LTXError("data after the end of the lz4 frame", "format")
        while pos < n or hint:
            src_n = n - pos
            dst_n = cap
            with nogil:
                hint = LZ4F_decompress(self.d, dst, &dst_n, &src[0] + pos if n else NULL, &src_n, NULL)
            if LZ4F_isError(hint):
                raise LTXError("lz4 frame: " + LZ4F_getErrorName(hint).decode(), "format")
            pos += src_n
            if dst_n:
                out += buf[:dst_n]
            if hint == 0:
                self.finished = True
                if pos < n:
                    raise LTXError("data after the end of the lz4 frame", "format")
                break
            if pos >= n and dst_n < cap:
                break  # needs more input
        return bytes(out)
