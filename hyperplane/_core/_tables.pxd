# Helpers shared by the compiled hash tables (_nat, _conntrack): hashing, prefetching, memory,
# time. Their open-addressing index is _index.pxd.
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


cdef extern from "math.h" nogil:
    double nextafter(double x, double y)
    double fabs(double x)
    double floor(double x)
    const double INFINITY


cdef inline double deadline(double t, double timeout) noexcept nogil:
    """``t + timeout`` rounded up to the next double, not to the nearest: liveness (``now <
    deadline``) is then exact for every double ``now``. Rounded to nearest, a timeout below half
    the spacing of doubles at ``t`` (1 ms at t >= 2**44 s) vanished, and a connection was dead at
    the very time it was opened."""
    cdef double e = t + timeout
    cdef double err
    # Fast2Sum: the rounding error of the sum, exact when the larger magnitude comes first
    if fabs(t) >= fabs(timeout):
        err = timeout - (e - t)
    else:
        err = t - (e - timeout)
    if err > 0:                    # the sum was rounded down (false for inf and NaN)
        e = nextafter(e, INFINITY)
    return e


cdef inline long long second_of(double x) noexcept nogil:
    """floor(x) as an integer, clamped so that inf, NaN and huge deadlines never reach the
    undefined double -> int64 conversion (they land in some timer bucket and are looked at
    again when it comes round)."""
    if x >= 4.0e18:
        return <long long>4000000000000000000
    if not (x >= -4.0e18):
        return -<long long>4000000000000000000
    return <long long>floor(x)
