# Helpers shared by the compiled hash tables (_nat, _conntrack): hashing, prefetching, memory.
from libc.stdint cimport uint64_t

cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)

cdef extern from "sys/mman.h" nogil:
    int madvise(void* addr, size_t length, int advice)
    int MADV_HUGEPAGE

cdef enum:
    HUGE_PAGE = 2 * 1024 * 1024
    CACHE_LINE = 64
    # Index entries are (8-bit hash tag << 24) | 24-bit slot number; all ones is an empty bucket.
    EMPTY = 0xFFFFFFFF
    SLOT_MASK = 0xFFFFFF


cdef inline void* table_alloc(size_t size) noexcept nogil:
    """Cache-line aligned memory; large tables get 2 MiB alignment and transparent huge pages:
    the hot loops touch them at random, and with 4 KiB pages nearly every access would also miss
    the TLB."""
    cdef void* p = NULL
    cdef size_t align = HUGE_PAGE if size >= HUGE_PAGE else CACHE_LINE
    if posix_memalign(&p, align, size) != 0:
        return NULL
    if size >= HUGE_PAGE:
        madvise(p, size, MADV_HUGEPAGE)
    return p


cdef inline uint64_t mix(uint64_t a, uint64_t b) noexcept nogil:
    """Two 64-bit words to one well-spread hash (multiply-xorshift)."""
    cdef uint64_t h = (a * <uint64_t>0x9E3779B97F4A7C15) ^ ((b + <uint64_t>0x632BE59BD9B4E019) * <uint64_t>0xC2B2AE3D27D4EB4F)
    h ^= h >> 31
    h *= <uint64_t>0xD6E8FEB86659FD93
    h ^= h >> 32
    return h
