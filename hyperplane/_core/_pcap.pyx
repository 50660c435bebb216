# cython: language_level=3, embedsignature=True
"""Compiled scanning of capture bytes into packet records, and building of output frames.

Theory of operation
-------------------
``pcap.py`` owns the file: it reads bounded buffers, parses the rare blocks (pcap global header,
pcapng section headers and interface descriptions) and converts status codes into
``CaptureError``. This module owns the per-packet work, GIL-free:

- ``scan_pcap`` / ``scan_pcapng`` walk the records of one buffer from ``pos`` and fill one row of
  every output column per packet, stopping when the chunk is full, when the next record is not
  completely in the buffer (``NEED_DATA``), at a pcapng block that Python must parse
  (``BLOCK``: SHB, IDB), or at malformed framing (an error status with the offset and the value).
  Every record that is completely in the buffer gets a row: packets that cannot be emulated get
  a row too, with their ``kind``.
- ``build_frames`` copies selected frames into an output pcap or pcapng byte buffer (record
  header or enhanced packet block + frame),
  writes the translated addresses, ports and ICMP echo identifiers into the copy and updates the
  IPv4 header and TCP/UDP/ICMP checksums incrementally (RFC 1624), so a checksum that was right
  stays right and one left wrong by checksum offload stays as it was.

The record layout is declared locally (``rec_t``) instead of cimporting ``_types.pxd``; it must
match ``hyperplane.records.PACKET`` field for field (``record_layout()`` lets a test check that).
Every read of frame bytes is bounded by the captured length; every loop step advances by at least
12 bytes (a pcap record header, a pcapng block's minimum length) or ends the scan, so no input can
make a scan read out of bounds or loop forever.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #include <stddef.h>
    typedef struct {
        double time;
        uint32_t src_ip;
        uint32_t dst_ip;
        uint16_t src_port;
        uint16_t dst_port;
        uint16_t length;
        uint8_t proto;
        uint8_t flags;
    } hp_rec_t;
    """
    ctypedef struct rec_t "hp_rec_t":
        double time
        uint32_t src_ip
        uint32_t dst_ip
        uint16_t src_port
        uint16_t dst_port
        uint16_t length
        uint8_t proto
        uint8_t flags


#### Constants (exported below as plain ints for pcap.py) ####

# packet kinds
cdef enum:
    K_EMULATED = 0
    K_IPV6 = 1
    K_ARP = 2
    K_NON_IP = 3
    K_FRAGMENT = 4
    K_TRUNCATED = 5
    K_MALFORMED = 6

# scan status
cdef enum:
    S_FULL = 0          # the chunk holds max_rows rows
    S_NEED_DATA = 1     # the record at pos is not completely in the buffer (need: bytes from pos)
    S_BLOCK = 2         # a pcapng SHB or IDB at pos: Python parses it
    S_RECORD_TOO_LONG = 3   # value: captured length
    S_BLOCK_LENGTH = 4      # value: block total length (too small / not a multiple of 4)
    S_BLOCK_TRAILER = 5     # value: the trailing length that differs from the leading one
    S_BLOCK_TOO_LONG = 6    # value: block total length
    S_BAD_INTERFACE = 7     # value: interface id
    S_CAPLEN_BLOCK = 8      # value: captured length that overruns its block
    S_TIME_RANGE = 9        # value: the raw timestamp (as uint64 bits), beyond int64 nanoseconds

cdef enum:
    MAX_RECORD = 262144         # captured bytes of one packet
    MAX_BLOCK = 16777216        # any pcapng block

# link types handled
cdef enum:
    LT_NULL = 0
    LT_ETHERNET = 1
    LT_RAW12 = 12
    LT_RAW14 = 14
    LT_RAW = 101
    LT_LOOP = 108
    LT_SLL = 113
    LT_IPV4 = 228
    LT_IPV6 = 229
    LT_SLL2 = 276

KIND_EMULATED = K_EMULATED
KIND_IPV6 = K_IPV6
KIND_ARP = K_ARP
KIND_NON_IP = K_NON_IP
KIND_FRAGMENT = K_FRAGMENT
KIND_TRUNCATED = K_TRUNCATED
KIND_MALFORMED = K_MALFORMED
STATUS_FULL = S_FULL
STATUS_NEED_DATA = S_NEED_DATA
STATUS_BLOCK = S_BLOCK
STATUS_RECORD_TOO_LONG = S_RECORD_TOO_LONG
STATUS_BLOCK_LENGTH = S_BLOCK_LENGTH
STATUS_BLOCK_TRAILER = S_BLOCK_TRAILER
STATUS_BLOCK_TOO_LONG = S_BLOCK_TOO_LONG
STATUS_BAD_INTERFACE = S_BAD_INTERFACE
STATUS_CAPLEN_BLOCK = S_CAPLEN_BLOCK
STATUS_TIME_RANGE = S_TIME_RANGE
MAX_RECORD_BYTES = MAX_RECORD
MAX_BLOCK_BYTES = MAX_BLOCK
LINKTYPES = (LT_NULL, LT_ETHERNET, LT_RAW12, LT_RAW14, LT_RAW, LT_LOOP, LT_SLL, LT_IPV4,
             LT_IPV6, LT_SLL2)


def record_layout():
    """Offsets and size of the C record, for the test that pins it to ``records.PACKET``."""
    cdef rec_t r
    cdef char* b = <char*>&r
    return {
        "itemsize": <Py_ssize_t>sizeof(rec_t),
        "time": <Py_ssize_t>(<char*>&r.time - b),
        "src_ip": <Py_ssize_t>(<char*>&r.src_ip - b),
        "dst_ip": <Py_ssize_t>(<char*>&r.dst_ip - b),
        "src_port": <Py_ssize_t>(<char*>&r.src_port - b),
        "dst_port": <Py_ssize_t>(<char*>&r.dst_port - b),
        "length": <Py_ssize_t>(<char*>&r.length - b),
        "proto": <Py_ssize_t>(<char*>&r.proto - b),
        "flags": <Py_ssize_t>(<char*>&r.flags - b),
    }


#### Byte loads (shift-composed: portable, and compilers fuse them into one load) ####

cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]

cdef inline uint16_t le16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[1] << 8) | p[0])

cdef inline uint32_t rd32(const uint8_t* p, bint big) noexcept nogil:
    return be32(p) if big else le32(p)

cdef inline uint16_t rd16(const uint8_t* p, bint big) noexcept nogil:
    return be16(p) if big else le16(p)

cdef inline void put_be16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v

cdef inline void put_be32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v

cdef inline void put_le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>v
    p[1] = <uint8_t>(v >> 8)
    p[2] = <uint8_t>(v >> 16)
    p[3] = <uint8_t>(v >> 24)


#### Output columns of one chunk ####

cdef struct cols_t:
    rec_t* rec
    uint8_t* kind
    int64_t* ts_ns
    int64_t* frame_offset
    int64_t* file_offset
    uint32_t* caplen
    uint32_t* wirelen
    uint16_t* l3_offset
    uint16_t* ethertype
    uint16_t* linktype
    uint16_t* interface


#### Frame parsing: link layer, then IPv4 / L4 ####

cdef inline uint8_t parse_ipv4(const uint8_t* ip, Py_ssize_t avail, rec_t* r) noexcept nogil:
    """Fill the record from an IPv4 header of which ``avail`` bytes were captured."""
    cdef Py_ssize_t ihl, need
    cdef uint16_t frag, total
    cdef const uint8_t* l4
    cdef uint8_t proto, icmp_type
    if avail < 1:
        return K_TRUNCATED
    if (ip[0] >> 4) != 4:
        return K_MALFORMED
    if avail < 20:
        return K_TRUNCATED
    ihl = (ip[0] & 0x0F) * 4
    total = be16(ip + 2)
    proto = ip[9]
    r.length = total
    r.proto = proto
    r.src_ip = be32(ip + 12)
    r.dst_ip = be32(ip + 16)
    if ihl < 20 or total < ihl:
        return K_MALFORMED
    if avail < ihl:
        return K_TRUNCATED
    frag = be16(ip + 6)
    if frag & 0x1FFF:
        return K_FRAGMENT
    l4 = ip + ihl
    avail -= ihl
    if proto == 6:
        # through the checksum field, so the writer can always rewrite it
        if avail < 18:
            return K_TRUNCATED
        r.src_port = be16(l4)
        r.dst_port = be16(l4 + 2)
        r.flags = l4[13]
    elif proto == 17:
        if avail < 8:
            return K_TRUNCATED
        r.src_port = be16(l4)
        r.dst_port = be16(l4 + 2)
    elif proto == 1:
        if avail < 8:
            return K_TRUNCATED
        icmp_type = l4[0]
        r.flags = icmp_type
        if icmp_type == 8:
            r.src_port = be16(l4 + 4)
        elif icmp_type == 0:
            r.dst_port = be16(l4 + 4)
        else:
            r.dst_port = l4[1]         # other ICMP types carry their code (records.py)
    return K_EMULATED


cdef inline uint8_t parse_l3(const uint8_t* f, Py_ssize_t caplen, Py_ssize_t off,
                             uint16_t etype, uint32_t wirelen, rec_t* r) noexcept nogil:
    """Classify by ethertype and fill the record; ``off`` is where the L3 header starts."""
    cdef Py_ssize_t rest
    if etype == 0x0800:
        return parse_ipv4(f + off, caplen - off, r)
    rest = <Py_ssize_t>wirelen - off
    if rest < 0:
        rest = caplen - off
    r.length = <uint16_t>(rest if rest < 65535 else 65535)
    if etype == 0x86DD:
        if caplen - off >= 40:
            r.length = <uint16_t>min(40 + <Py_ssize_t>be16(f + off + 4), 65535)
            r.proto = f[off + 6]
        return K_IPV6
    if etype == 0x0806:
        return K_ARP
    return K_NON_IP


cdef inline uint8_t skip_vlan(const uint8_t* f, Py_ssize_t caplen, Py_ssize_t* off,
                              uint16_t* etype) noexcept nogil:
    """Step over 802.1Q / 802.1ad / QinQ tags; 0 when done, K_TRUNCATED if a tag is cut."""
    while etype[0] == 0x8100 or etype[0] == 0x88A8 or etype[0] == 0x9100:
        if caplen - off[0] < 4:
            return K_TRUNCATED
        etype[0] = be16(f + off[0] + 2)
        off[0] += 4
    return 0


cdef inline uint8_t parse_frame(const uint8_t* f, Py_ssize_t caplen, uint32_t wirelen,
                                uint16_t linktype, rec_t* r, uint16_t* l3_out,
                                uint16_t* etype_out) noexcept nogil:
    cdef Py_ssize_t off = 0
    cdef uint16_t etype = 0
    cdef uint32_t fam
    cdef uint8_t k
    if linktype == LT_ETHERNET:
        if caplen < 14:
            l3_out[0] = <uint16_t>caplen
            return K_TRUNCATED
        etype = be16(f + 12)
        off = 14
        k = skip_vlan(f, caplen, &off, &etype)
        if k:
            l3_out[0] = <uint16_t>off
            return k
        if etype < 0x0600:
            etype = 0   # 802.3 length field: LLC/SNAP payload, not emulated
    elif linktype == LT_SLL:
        if caplen < 16:
            l3_out[0] = <uint16_t>caplen
            return K_TRUNCATED
        etype = be16(f + 14)
        off = 16
        k = skip_vlan(f, caplen, &off, &etype)
        if k:
            l3_out[0] = <uint16_t>off
            return k
        if etype < 0x0600:
            etype = 0
    elif linktype == LT_SLL2:
        if caplen < 20:
            l3_out[0] = <uint16_t>caplen
            return K_TRUNCATED
        etype = be16(f)
        off = 20
        k = skip_vlan(f, caplen, &off, &etype)
        if k:
            l3_out[0] = <uint16_t>off
            return k
        if etype < 0x0600:
            etype = 0
    elif linktype == LT_NULL or linktype == LT_LOOP:
        if caplen < 4:
            l3_out[0] = <uint16_t>caplen
            return K_TRUNCATED
        # the family is in the capturing host's order for NULL, network order for LOOP
        fam = le32(f)
        if fam > 0xFFFF:
            fam = be32(f)
        off = 4
        if fam == 2:
            etype = 0x0800
        elif fam == 10 or fam == 24 or fam == 28 or fam == 30:
            etype = 0x86DD
    else:
        # raw IP: the version nibble decides (LINKTYPE_IPV4/IPV6 say it too; trust the bytes)
        if caplen < 1:
            l3_out[0] = 0
            return K_TRUNCATED
        if (f[0] >> 4) == 4:
            etype = 0x0800
        elif (f[0] >> 4) == 6:
            etype = 0x86DD
    l3_out[0] = <uint16_t>off
    etype_out[0] = etype
    return parse_l3(f, caplen, off, etype, wirelen, r)


cdef inline void emit_row(cols_t* c, Py_ssize_t row, const uint8_t* frame, Py_ssize_t frame_pos,
                          int64_t file_offset, uint32_t caplen, uint32_t wirelen, int64_t ts_ns,
                          uint16_t linktype, uint16_t iface) noexcept nogil:
    cdef rec_t* r = c.rec + row
    cdef uint16_t l3 = 0
    cdef uint16_t etype = 0
    memset(r, 0, sizeof(rec_t))
    r.time = <double>(ts_ns // 1000000000) + <double>(ts_ns % 1000000000) * 1e-9
    c.kind[row] = parse_frame(frame, caplen, wirelen, linktype, r, &l3, &etype)
    c.ts_ns[row] = ts_ns
    c.frame_offset[row] = frame_pos
    c.file_offset[row] = file_offset
    c.caplen[row] = caplen
    c.wirelen[row] = wirelen
    c.l3_offset[row] = l3
    c.ethertype[row] = etype
    c.linktype[row] = linktype
    c.interface[row] = iface


cdef inline bint fill_cols(cols_t* c, uint8_t[::1] rec_bytes, uint8_t[::1] kind,
                           int64_t[::1] ts_ns, int64_t[::1] frame_offset,
                           int64_t[::1] file_offset, uint32_t[::1] caplen,
                           uint32_t[::1] wirelen, uint16_t[::1] l3_offset,
                           uint16_t[::1] ethertype, uint16_t[::1] linktype,
                           uint16_t[::1] interface) except -1:
    cdef Py_ssize_t n = kind.shape[0]
    if n == 0:
        raise ValueError("empty chunk columns")
    if (rec_bytes.shape[0] != n * <Py_ssize_t>sizeof(rec_t) or ts_ns.shape[0] != n
            or frame_offset.shape[0] != n or file_offset.shape[0] != n or caplen.shape[0] != n
            or wirelen.shape[0] != n or l3_offset.shape[0] != n or ethertype.shape[0] != n
            or linktype.shape[0] != n or interface.shape[0] != n):
        raise ValueError("chunk columns differ in length")
    c.rec = <rec_t*>&rec_bytes[0]
    c.kind = &kind[0]
    c.ts_ns = &ts_ns[0]
    c.frame_offset = &frame_offset[0]
    c.file_offset = &file_offset[0]
    c.caplen = &caplen[0]
    c.wirelen = &wirelen[0]
    c.l3_offset = &l3_offset[0]
    c.ethertype = &ethertype[0]
    c.linktype = &linktype[0]
    c.interface = &interface[0]
    return 0


#### Classic pcap ####

cdef inline int64_t pcap_ts(uint32_t sec, uint32_t frac, bint nano) noexcept nogil:
    return <int64_t>sec * 1000000000 + (<int64_t>frac if nano else <int64_t>frac * 1000)


def scan_pcap(const uint8_t[::1] buf not None, Py_ssize_t pos, Py_ssize_t end,
              int64_t base, bint big, bint nano, int linktype,
              uint8_t[::1] rec_bytes not None, uint8_t[::1] kind not None,
              int64_t[::1] ts_ns not None, int64_t[::1] frame_offset not None,
              int64_t[::1] file_offset not None, uint32_t[::1] caplen not None,
              uint32_t[::1] wirelen not None, uint16_t[::1] l3_offset not None,
              uint16_t[::1] ethertype not None, uint16_t[::1] linktype_col not None,
              uint16_t[::1] interface not None, Py_ssize_t row):
    """Scan classic pcap records in ``buf[pos:end]`` into rows ``row..``.

    ``base`` is the file offset of ``buf[0]``. Returns ``(status, pos, row, need, value)``.
    """
    cdef cols_t c
    cdef Py_ssize_t max_rows = kind.shape[0]
    cdef int status = S_FULL
    cdef Py_ssize_t need = 0
    cdef int64_t value = 0
    cdef const uint8_t* p
    cdef uint32_t incl, orig
    cdef uint16_t lt = <uint16_t>linktype
    fill_cols(&c, rec_bytes, kind, ts_ns, frame_offset, file_offset, caplen, wirelen,
              l3_offset, ethertype, linktype_col, interface)
    if end > buf.shape[0] or pos < 0 or pos > end or row < 0 or row > max_rows:
        raise ValueError("scan window outside the buffer")
    if end == 0:
        return (S_NEED_DATA, pos, row, 16, 0)
    with nogil:
        p = &buf[0]
        while True:
            if row >= max_rows:
                status = S_FULL
                break
            if end - pos < 16:
                status = S_NEED_DATA
                need = 16
                break
            incl = rd32(p + pos + 8, big)
            orig = rd32(p + pos + 12, big)
            if incl > MAX_RECORD:
                status = S_RECORD_TOO_LONG
                value = incl
                break
            if end - pos - 16 < <Py_ssize_t>incl:
                status = S_NEED_DATA
                need = 16 + <Py_ssize_t>incl
                break
            emit_row(&c, row, p + pos + 16, pos + 16, base + pos, incl, orig,
                     pcap_ts(rd32(p + pos, big), rd32(p + pos + 4, big), nano), lt, 0)
            row += 1
            pos += 16 + <Py_ssize_t>incl
    return (status, pos, row, need, value)


#### pcapng ####

cdef enum:
    NS_PER_S = 1000000000

cdef inline bint ng_ts(uint64_t t, int64_t mul, int64_t div, int shift, int64_t offset_ns,
                       int64_t* out) noexcept nogil:
    """A pcapng timestamp in interface units as nanoseconds (if_tsresol, if_tsoffset) into
    ``out``; False if it lies beyond int64 nanoseconds (the sum would wrap into the past)."""
    cdef uint64_t whole, ns
    cdef uint64_t top = <uint64_t>0x7FFFFFFFFFFFFFFF
    if shift >= 0:
        # pcap.py refuses 2^-n resolutions with n > 63, so the shifts below are defined
        whole = t >> shift
        if whole > top // NS_PER_S:
            return False
        ns = whole * NS_PER_S
        if shift > 0:
            ns += <uint64_t>(<double>(t & ((<uint64_t>1 << shift) - 1)) * 1e9
                             / <double>(<uint64_t>1 << shift))
    elif div > 1:
        ns = t // <uint64_t>div
    else:
        if t > top // <uint64_t>mul:
            return False
        ns = t * <uint64_t>mul
    if ns > top or (offset_ns > 0 and <int64_t>ns > <int64_t>top - offset_ns):
        return False
    out[0] = <int64_t>ns + offset_ns   # ns >= 0 and offset_ns > -2^62: no wrap below either
    return True


def scan_pcapng(const uint8_t[::1] buf not None, Py_ssize_t pos, Py_ssize_t end,
                int64_t base, bint big,
                const uint16_t[::1] if_linktype not None, const uint32_t[::1] if_snaplen not None,
                const int64_t[::1] if_mul not None, const int64_t[::1] if_div not None,
                const int32_t[::1] if_shift not None, const int64_t[::1] if_offset_ns not None,
                uint8_t[::1] rec_bytes not None, uint8_t[::1] kind not None,
                int64_t[::1] ts_ns not None, int64_t[::1] frame_offset not None,
                int64_t[::1] file_offset not None, uint32_t[::1] caplen not None,
                uint32_t[::1] wirelen not None, uint16_t[::1] l3_offset not None,
                uint16_t[::1] ethertype not None, uint16_t[::1] linktype_col not None,
                uint16_t[::1] interface not None, Py_ssize_t row, Py_ssize_t if_first=0):
    """Scan pcapng blocks in ``buf[pos:end]``: EPB, SPB and the obsolete PB become rows; other
    blocks are skipped and counted; SHB and IDB stop the scan for Python.

    ``if_first`` is the capture-wide number of the section's interface 0: rows carry
    ``if_first + interface id``. Returns ``(status, pos, row, need, value, skipped_blocks)``.
    """
    cdef cols_t c
    cdef Py_ssize_t max_rows = kind.shape[0]
    cdef Py_ssize_t nif = if_linktype.shape[0]
    cdef int status = S_FULL
    cdef Py_ssize_t need = 0
    cdef int64_t value = 0
    cdef Py_ssize_t skipped = 0
    cdef const uint8_t* p
    cdef const uint8_t* b
    cdef uint32_t btype, blen, incl, orig, iface, snap
    cdef uint64_t t
    cdef int64_t tns = 0
    fill_cols(&c, rec_bytes, kind, ts_ns, frame_offset, file_offset, caplen, wirelen,
              l3_offset, ethertype, linktype_col, interface)
    if end > buf.shape[0] or pos < 0 or pos > end or row < 0 or row > max_rows:
        raise ValueError("scan window outside the buffer")
    if (if_snaplen.shape[0] != nif or if_mul.shape[0] != nif or if_div.shape[0] != nif
            or if_shift.shape[0] != nif or if_offset_ns.shape[0] != nif):
        raise ValueError("interface columns differ in length")
    if if_first < 0 or if_first + nif > 65536:
        raise ValueError("interface numbers beyond 16 bits")
    if end == 0:
        return (S_NEED_DATA, pos, row, 8, 0, 0)
    with nogil:
        p = &buf[0]
        while True:
            if row >= max_rows:
                status = S_FULL
                break
            if end - pos < 8:
                status = S_NEED_DATA
                need = 8
                break
            b = p + pos
            btype = rd32(b, big)
            if btype == 0x0A0D0D0A:
                # a new section may switch byte order: Python reads its length
                status = S_BLOCK
                break
            blen = rd32(b + 4, big)
            if blen < 12 or (blen & 3):
                status = S_BLOCK_LENGTH
                value = blen
                break
            if blen > MAX_BLOCK:
                status = S_BLOCK_TOO_LONG
                value = blen
                break
            if end - pos < <Py_ssize_t>blen:
                status = S_NEED_DATA
                need = blen
                break
            if rd32(b + blen - 4, big) != blen:
                status = S_BLOCK_TRAILER
                value = rd32(b + blen - 4, big)
                break
            if btype == 1:
                status = S_BLOCK
                break
            if btype == 6 or btype == 2:
                # EPB: iface u32 @8; obsolete PB: iface u16 @8, drops u16 @10. Then both have
                # ts_high @12, ts_low @16, caplen @20, origlen @24, data @28.
                if blen < 32:
                    status = S_BLOCK_LENGTH
                    value = blen
                    break
                iface = rd32(b + 8, big) if btype == 6 else rd16(b + 8, big)
                if iface >= <uint32_t>nif:
                    status = S_BAD_INTERFACE
                    value = iface
                    break
                incl = rd32(b + 20, big)
                orig = rd32(b + 24, big)
                if incl > MAX_RECORD:
                    status = S_RECORD_TOO_LONG
                    value = incl
                    break
                if <Py_ssize_t>incl > <Py_ssize_t>blen - 32:
                    status = S_CAPLEN_BLOCK
                    value = incl
                    break
                t = (<uint64_t>rd32(b + 12, big) << 32) | rd32(b + 16, big)
                if not ng_ts(t, if_mul[iface], if_div[iface], if_shift[iface],
                             if_offset_ns[iface], &tns):
                    status = S_TIME_RANGE
                    value = <int64_t>t
                    break
                emit_row(&c, row, b + 28, pos + 28, base + pos, incl, orig, tns,
                         if_linktype[iface], <uint16_t>(iface + if_first))
                row += 1
            elif btype == 3:
                # SPB: interface 0, no timestamp, captured = min(origlen, snaplen, room)
                if blen < 16:
                    status = S_BLOCK_LENGTH
                    value = blen
                    break
                if nif == 0:
                    status = S_BAD_INTERFACE
                    value = 0
                    break
                orig = rd32(b + 8, big)
                incl = blen - 16
                if orig < incl:
                    incl = orig
                snap = if_snaplen[0]
                if snap != 0 and snap < incl:
                    incl = snap
                if incl > MAX_RECORD:
                    status = S_RECORD_TOO_LONG
                    value = incl
                    break
                emit_row(&c, row, b + 12, pos + 12, base + pos, incl, orig,
                         if_offset_ns[0], if_linktype[0], <uint16_t>if_first)
                row += 1
            else:
                skipped += 1
            pos += blen
    return (status, pos, row, need, value, skipped)


#### Output frames ####

cdef inline uint32_t csum_word(uint32_t acc, uint16_t old, uint16_t new) noexcept nogil:
    # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), accumulated per changed 16-bit word
    return acc + (<uint16_t>~old) + new

cdef inline uint16_t csum_apply(uint16_t hc, uint32_t acc) noexcept nogil:
    acc += <uint16_t>~hc
    acc = (acc & 0xFFFF) + (acc >> 16)
    acc = (acc & 0xFFFF) + (acc >> 16)
    return <uint16_t>~acc

cdef inline uint32_t csum_addr(uint32_t acc, uint32_t old, uint32_t new) noexcept nogil:
    acc = csum_word(acc, <uint16_t>(old >> 16), <uint16_t>(new >> 16))
    return csum_word(acc, <uint16_t>old, <uint16_t>new)


cdef inline void rewrite_ipv4(uint8_t* ip, Py_ssize_t avail, uint8_t kind,
                              const rec_t* r) noexcept nogil:
    """Write the record's addresses (and ports / echo id) into a copied IPv4 packet."""
    cdef Py_ssize_t ihl
    cdef uint32_t old_src, old_dst, acc_ip, acc_l4
    cdef uint16_t old_sp, old_dp, ck
    cdef uint8_t* l4
    cdef uint8_t proto
    if avail < 20 or (ip[0] >> 4) != 4:
        return
    ihl = (ip[0] & 0x0F) * 4
    if ihl < 20 or avail < ihl:
        return
    old_src = be32(ip + 12)
    old_dst = be32(ip + 16)
    acc_ip = 0
    if old_src != r.src_ip or old_dst != r.dst_ip:
        acc_ip = csum_addr(csum_addr(0, old_src, r.src_ip), old_dst, r.dst_ip)
        put_be32(ip + 12, r.src_ip)
        put_be32(ip + 16, r.dst_ip)
        put_be16(ip + 10, csum_apply(be16(ip + 10), acc_ip))
    if kind != K_EMULATED:
        return
    proto = ip[9]
    l4 = ip + ihl
    avail -= ihl
    if proto == 6 or proto == 17:
        if avail < (18 if proto == 6 else 8):
            return
        old_sp = be16(l4)
        old_dp = be16(l4 + 2)
        if acc_ip == 0 and old_sp == r.src_port and old_dp == r.dst_port:
            return
        acc_l4 = acc_ip  # the pseudo-header carries the addresses
        acc_l4 = csum_word(acc_l4, old_sp, r.src_port)
        acc_l4 = csum_word(acc_l4, old_dp, r.dst_port)
        put_be16(l4, r.src_port)
        put_be16(l4 + 2, r.dst_port)
        if proto == 6:
            put_be16(l4 + 16, csum_apply(be16(l4 + 16), acc_l4))
        else:
            ck = be16(l4 + 6)
            if ck != 0:    # UDP checksum 0 means "none": it stays 0
                ck = csum_apply(ck, acc_l4)
                put_be16(l4 + 6, ck if ck != 0 else 0xFFFF)
    elif proto == 1:
        if avail < 8:
            return
        # echo identifier plays the port (records.py): request in src_port, reply in dst_port
        if l4[0] == 8:
            ck = r.src_port
        elif l4[0] == 0:
            ck = r.dst_port
        else:
            return
        old_sp = be16(l4 + 4)
        if old_sp != ck:
            put_be16(l4 + 4, ck)
            put_be16(l4 + 2, csum_apply(be16(l4 + 2), csum_word(0, old_sp, ck)))


cdef inline Py_ssize_t link_len(int lt) noexcept nogil:
    """Bytes of the link header synthesized in front of a re-framed L3 packet."""
    if lt == LT_ETHERNET:
        return 14
    if lt == LT_SLL:
        return 16
    if lt == LT_SLL2:
        return 20
    if lt == LT_NULL or lt == LT_LOOP:
        return 4
    return 0


cdef inline bint can_reframe(int lt, uint16_t etype) noexcept nogil:
    """Whether a frame whose L3 protocol is ``etype`` keeps its L3 packet whole behind a
    link header of type ``lt`` (ethertype-carrying headers take any protocol; address-family
    headers and raw IP only IPv4/IPv6, and LINKTYPE_IPV4/IPV6 only their own)."""
    if lt == LT_ETHERNET or lt == LT_SLL or lt == LT_SLL2:
        return etype != 0
    if lt == LT_IPV4:
        return etype == 0x0800
    if lt == LT_IPV6:
        return etype == 0x86DD
    if lt == LT_NULL or lt == LT_LOOP or lt == LT_RAW or lt == LT_RAW12 or lt == LT_RAW14:
        return etype == 0x0800 or etype == 0x86DD
    return False


cdef inline void put_link(uint8_t* f, int lt, uint16_t etype) noexcept nogil:
    """Write a synthesized link header of ``link_len(lt)`` bytes: no addresses, the protocol."""
    cdef uint32_t fam
    if lt == LT_ETHERNET:
        memset(f, 0, 12)
        put_be16(f + 12, etype)
    elif lt == LT_SLL:
        # packet type 0 (to us), ARPHRD_NONE (0xFFFE: no link-layer address), address length 0
        memset(f, 0, 16)
        put_be16(f + 2, 0xFFFE)
        put_be16(f + 14, etype)
    elif lt == LT_SLL2:
        memset(f, 0, 20)
        put_be16(f, etype)
        put_be16(f + 8, 0xFFFE)
    elif lt == LT_NULL or lt == LT_LOOP:
        # AF_INET is 2 everywhere; AF_INET6 differs by OS: 24 (NetBSD/OpenBSD) is one that
        # every reader accepts. NULL is in the writer's (little-endian) order, LOOP in network.
        fam = 2 if etype == 0x0800 else 24
        if lt == LT_NULL:
            put_le32(f, fam)
        else:
            put_be32(f, fam)


def reframe_refused(const uint16_t[::1] linktype not None, const uint16_t[::1] ethertype not None,
                    const int64_t[::1] rows not None, int out_linktype):
    """The first of ``rows`` whose frame cannot be written as ``out_linktype`` (its own link
    type differs and its L3 packet would not survive re-framing), or -1."""
    cdef Py_ssize_t j, i, n = linktype.shape[0]
    if ethertype.shape[0] != n:
        raise ValueError("chunk columns differ in length")
    for j in range(rows.shape[0]):
        i = rows[j]
        if i < 0 or i >= n:
            raise IndexError(f"row {i} outside the chunk of {n}")
        if linktype[i] != out_linktype and not can_reframe(out_linktype, ethertype[i]):
            return i
    return -1


def build_frames(const uint8_t[::1] data not None, const int64_t[::1] frame_offset not None,
                 const uint32_t[::1] caplen not None, const uint32_t[::1] wirelen not None,
                 const uint16_t[::1] l3_offset not None, const uint16_t[::1] linktype not None,
                 const uint16_t[::1] ethertype not None, const uint8_t[::1] kind not None,
                 const int64_t[::1] ts_ns not None, const uint8_t[::1] rec_bytes not None,
                 const int64_t[::1] rows not None, uint8_t[::1] out not None,
                 int out_linktype, bint nanosecond, const uint32_t[::1] epb_interface=None):
    """Append output records for ``rows`` to ``out``; returns the number of bytes written.

    Classic pcap (``epb_interface`` None): little-endian record header + frame. A frame whose
    link type equals ``out_linktype`` keeps its link layer byte for byte; otherwise its L3
    packet is written behind a synthesized link header (Ethernet, SLL, SLL2: no addresses, the
    frame's ethertype; NULL/LOOP: the address family; none for raw IP), where ``can_reframe``
    allows it. pcapng: one enhanced packet block per row on interface ``epb_interface[j]``,
    frame kept as it is; the timestamp is ``ts_ns`` in nanoseconds or microseconds (the
    interface's resolution, written by the caller). ``out`` must hold ``40 + caplen`` bytes per
    row.
    """
    cdef Py_ssize_t n = kind.shape[0]
    cdef Py_ssize_t nrows = rows.shape[0]
    cdef Py_ssize_t cap = out.shape[0]
    cdef Py_ssize_t i, j, w = 0, l3, inlen, body, link, fo, need, head, pad
    cdef uint8_t* o
    cdef uint8_t* frame
    cdef const uint8_t* src
    cdef const rec_t* recs
    cdef int64_t t
    cdef uint64_t units
    cdef uint32_t orig
    cdef bint ng = epb_interface is not None
    cdef Py_ssize_t out_link = link_len(out_linktype)
    if (frame_offset.shape[0] != n or caplen.shape[0] != n or wirelen.shape[0] != n
            or l3_offset.shape[0] != n or linktype.shape[0] != n or ethertype.shape[0] != n
            or ts_ns.shape[0] != n or rec_bytes.shape[0] != n * <Py_ssize_t>sizeof(rec_t)):
        raise ValueError("chunk columns differ in length")
    if ng and epb_interface.shape[0] != nrows:
        raise ValueError("one output interface per row needed")
    # validate everything first, so the GIL-free loop cannot write out of bounds
    need = 0
    for j in range(nrows):
        i = rows[j]
        if i < 0 or i >= n:
            raise IndexError(f"row {i} outside the chunk of {n}")
        fo = frame_offset[i]
        if fo < 0 or fo + <Py_ssize_t>caplen[i] > data.shape[0]:
            raise ValueError(f"row {i}: frame outside the chunk's data")
        if not ng and linktype[i] != out_linktype and not can_reframe(out_linktype, ethertype[i]):
            raise ValueError(f"row {i}: link type {linktype[i]} cannot be written as "
                             f"link type {out_linktype}")
        if ts_ns[i] < 0:
            raise ValueError(f"row {i}: negative timestamp")
        need += 40 + <Py_ssize_t>caplen[i]
    if need > cap:
        raise ValueError(f"output buffer of {cap} bytes, {need} needed")
    if nrows == 0:
        return 0
    head = 28 if ng else 16
    with nogil:
        o = &out[0]
        src = &data[0]
        recs = <const rec_t*>&rec_bytes[0]
        for j in range(nrows):
            i = rows[j]
            inlen = caplen[i]
            orig = wirelen[i]
            frame = o + w + head
            if ng or linktype[i] == out_linktype:
                memcpy(frame, src + frame_offset[i], inlen)
                l3 = l3_offset[i]
                body = inlen
            else:
                l3 = l3_offset[i]
                if l3 > inlen:
                    l3 = inlen
                link = out_link
                put_link(frame, out_linktype, ethertype[i])
                memcpy(frame + link, src + frame_offset[i] + l3, inlen - l3)
                body = link + inlen - l3
                orig = <uint32_t>(orig - l3 + link) if orig >= l3 else <uint32_t>body
                l3 = link
            if (kind[i] == K_EMULATED or kind[i] == K_FRAGMENT) and l3 <= body:
                rewrite_ipv4(frame + l3, body - l3, kind[i], recs + i)
            t = ts_ns[i]
            if ng:
                units = <uint64_t>t if nanosecond else <uint64_t>(t // 1000)
                pad = (-body) & 3
                memset(frame + body, 0, pad)
                put_le32(o + w, 6)
                put_le32(o + w + 4, <uint32_t>(32 + body + pad))
                put_le32(o + w + 8, epb_interface[j])
                put_le32(o + w + 12, <uint32_t>(units >> 32))
                put_le32(o + w + 16, <uint32_t>units)
                put_le32(o + w + 20, <uint32_t>body)
                put_le32(o + w + 24, orig)
                put_le32(frame + body + pad, <uint32_t>(32 + body + pad))
                w += 32 + body + pad
            else:
                put_le32(o + w, <uint32_t>(t // 1000000000))
                put_le32(o + w + 4, <uint32_t>((t % 1000000000) if nanosecond
                                               else (t % 1000000000) // 1000))
                put_le32(o + w + 8, <uint32_t>body)
                put_le32(o + w + 12, orig)
                w += 16 + body
    return w
