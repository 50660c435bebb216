"""The compiled core (Cython): the walker (``_walk``), the NAT and tracking tables (``_nat``,
``_conntrack``, sharing the open-addressing index of ``_index.pxd`` and the helpers of
``_tables.pxd``), policy lookups (``_policy``), the capture reader (``_pcap``), flow-log records
(``_records``) and the line writer (``_text``). Declarations shared by several modules live in
``_types.pxd``; every code Python uses too (reasons, origins, NAT statuses and states, ...) in
``_codes.pxd``, once. Python code imports these through the facades of ``hyperplane.tables``,
``hyperplane.formats`` and ``hyperplane.dataplane``."""
