# cython: language_level=3, embedsignature=True
"""The codes of ``_codes.pxd`` as Python objects: each ``cpdef enum`` family is an ``IntEnum``
here (``Reason.R_DELIVERED``), the unnamed one plain ints (``N_STATES``). The public enums
(``hyperplane.Reason``, ``hyperplane.NatStatus``, ...) take their values from these."""
