# The open-addressing index of slot numbers that the NAT table (_nat.pyx: forward and reverse
# index) and the tracking table (_conntrack.pyx) both use, written once.
#
# An index is a power-of-two array of uint32 entries, ``mask`` = its length - 1. An entry is
# (8-bit hash tag << 24) | 24-bit slot number, all ones (EMPTY) a free bucket; so a probe past a
# colliding entry tells from the tag, without reading that slot (a cache miss), that it is not
# the one. Linear probing from bucket ``hash & mask``; removal by backward shift, so there are
# no tombstones and a probe stops at the first EMPTY. The caller keeps it at most half full.
#
# What is the table's own stays at the call site: the key comparison (a lookup walks the
# candidates whose tag matches, ``idx_candidate``, and compares them itself) and the hash of the key a
# slot holds (passed as a ``slot_hash_t`` with the table, for removal, rehashing and statistics).
# Every function here is ``cdef inline``, so a constant ``slot_hash_t`` is inlined as well.
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memset

from hyperplane._core._tables cimport table_alloc

cdef enum:
    EMPTY = 0xFFFFFFFF
    SLOT_MASK = 0xFFFFFF

# The hash of the key held in ``slot`` of ``table`` (a table-specific function).
ctypedef uint64_t (*slot_hash_t)(const void* table, uint32_t slot) noexcept nogil

# Where a lookup is: the bucket it reads next and the tag it looks for.
cdef struct probe_t:
    uint32_t i
    uint32_t tag

# Probe lengths, for introspection: a lookup of an indexed slot reads distance + 1 buckets.
cdef struct index_stats_t:
    uint64_t buckets
    uint64_t entries
    uint64_t probe_total           # sum over entries of (distance from home + 1)
    uint64_t probe_max


cdef inline uint32_t* idx_alloc(uint32_t buckets) noexcept nogil:
    """A new index of ``buckets`` (a power of two) EMPTY entries; NULL when out of memory."""
    cdef uint32_t* tab = <uint32_t*>table_alloc(<size_t>buckets * sizeof(uint32_t))
    if tab != NULL:
        memset(tab, 0xFF, <size_t>buckets * sizeof(uint32_t))
    return tab


cdef inline const uint32_t* idx_bucket(const uint32_t* tab, uint32_t mask, uint64_t h) noexcept nogil:
    """The home bucket of hash ``h`` (to prefetch its line)."""
    return &tab[<uint32_t>h & mask]


cdef inline probe_t idx_probe(uint64_t h, uint32_t mask) noexcept nogil:
    """A lookup of hash ``h``, at its home bucket."""
    cdef probe_t p
    p.i = <uint32_t>h & mask
    p.tag = <uint32_t>(h >> 56)
    return p


cdef inline uint32_t idx_candidate(const uint32_t* tab, uint32_t mask, probe_t* p) noexcept nogil:
    """The slot of the first entry from the probe's bucket on whose tag matches (the probe stays
    at it), or EMPTY once the probe meets a free bucket. The caller compares that slot's key
    with its own; if it differs, ``idx_skip`` and ask again. A lookup is then one loop:

        pr = idx_probe(h, mask)
        while True:
            s = idx_candidate(tab, mask, &pr)
            if s == EMPTY or <slot s holds the key>:
                return s
            idx_skip(&pr, mask)
    """
    cdef uint32_t e
    while True:
        e = tab[p.i]
        if e == EMPTY:
            return EMPTY
        if (e >> 24) == p.tag:
            return e & SLOT_MASK
        p.i = (p.i + 1) & mask


cdef inline void idx_skip(probe_t* p, uint32_t mask) noexcept nogil:
    """Move the probe past the candidate the caller did not want."""
    p.i = (p.i + 1) & mask


cdef inline void idx_put(uint32_t* tab, uint32_t mask, uint64_t h, uint32_t slot) noexcept nogil:
    """Index ``slot`` under hash ``h`` (the key is known not to be indexed yet)."""
    cdef uint32_t i = <uint32_t>h & mask
    while tab[i] != EMPTY:
        i = (i + 1) & mask
    tab[i] = (<uint32_t>(h >> 56) << 24) | slot


cdef inline bint idx_stays(uint32_t i, uint32_t j, uint32_t home) noexcept nogil:
    """Backward shift: after bucket ``i`` was emptied, the entry at ``j`` (later on the same run)
    stays where it is if its home bucket lies cyclically in (i, j]."""
    return (i < j and i < home and home <= j) or (i > j and (home > i or home <= j))


cdef inline void idx_remove(uint32_t* tab, uint32_t mask, uint32_t slot, slot_hash_t hash_of,
                            const void* table) noexcept nogil:
    """Take ``slot`` out of the index (nothing if it is not indexed: the search stops after one
    lap), shifting the rest of its run back so that no probe meets a hole."""
    cdef uint32_t i = <uint32_t>hash_of(table, slot) & mask
    cdef uint32_t j, n = 0
    while (tab[i] & SLOT_MASK) != slot:
        i = (i + 1) & mask
        n += 1
        if n > mask:
            return
    j = i
    while True:
        j = (j + 1) & mask
        if tab[j] == EMPTY:
            break
        if idx_stays(i, j, <uint32_t>hash_of(table, tab[j] & SLOT_MASK) & mask):
            continue
        tab[i] = tab[j]
        i = j
    tab[i] = EMPTY


cdef inline uint32_t* idx_rehash(const uint32_t* tab, uint32_t mask, uint32_t new_mask, slot_hash_t hash_of,
                                 const void* table) noexcept nogil:
    """A new index of ``new_mask + 1`` buckets holding the same slots; NULL when out of memory
    (``tab`` is left as it was, and the caller frees it once the new one is in place)."""
    cdef uint32_t* grown = idx_alloc(new_mask + 1)
    cdef uint32_t i, e
    if grown == NULL:
        return NULL
    for i in range(mask + 1):
        e = tab[i]
        if e != EMPTY:
            idx_put(grown, new_mask, hash_of(table, e & SLOT_MASK), e & SLOT_MASK)
    return grown


cdef inline index_stats_t idx_stats(const uint32_t* tab, uint32_t mask, slot_hash_t hash_of,
                                    const void* table) noexcept nogil:
    """How full the index is and how long its probes are (one pass; not a hot path)."""
    cdef index_stats_t s
    cdef uint32_t i, e, d
    s.buckets = <uint64_t>mask + 1
    s.entries = 0
    s.probe_total = 0
    s.probe_max = 0
    for i in range(mask + 1):
        e = tab[i]
        if e != EMPTY:
            d = (i - <uint32_t>hash_of(table, e & SLOT_MASK)) & mask
            s.entries += 1
            s.probe_total += d + 1
            if d + 1 > s.probe_max:
                s.probe_max = d + 1
    return s
