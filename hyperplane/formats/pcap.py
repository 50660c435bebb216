"""Capture files in and out: a streaming pcap/pcapng reader and a pcap/pcapng writer.

This is the public face (``hyperplane.pcap`` is this module); the code lives beside it:
``capture`` (the chunks, packet kinds, interfaces, link types, :class:`CaptureError`),
``pcap_reader`` (:func:`read_capture`, :func:`load_capture`, :class:`CaptureReader`: formats,
link types, limits and what bad input gives) and ``pcap_writer`` (:class:`CaptureWriter`,
:func:`write_capture`: re-framing, checksums, what cannot be written).

A streaming replay::

    reader = read_capture("in.pcap")
    with CaptureWriter("out.pcap", reader.output_linktype, reader.nanosecond) as out:
        for chunk in reader:
            emulate = chunk.kind == PacketKind.EMULATED
            translated, delivered = ...  # the pipeline, on chunk.records[emulate]
            out.write(chunk, translated, delivered)   # PACKET rows, bool mask, both len(chunk)
    reader.counts   # packets by PacketKind
"""

from __future__ import annotations

from hyperplane.formats.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    MAX_BLOCK_BYTES,  # noqa: F401 - importable here as before, not in *
    MAX_RECORD_BYTES,
    SUPPORTED_LINKTYPES,  # noqa: F401
    CaptureChunk,
    CaptureError,
    Interface,
    PacketKind,
)
from hyperplane.formats.pcap_reader import (
    DEFAULT_BUFFER_BYTES,  # noqa: F401
    CaptureReader,
    load_capture,
    read_capture,
)
from hyperplane.formats.pcap_writer import CaptureWriter, write_capture

__all__ = [
    "CaptureError",
    "PacketKind",
    "Interface",
    "CaptureChunk",
    "CaptureReader",
    "CaptureWriter",
    "read_capture",
    "load_capture",
    "write_capture",
    "MAX_RECORD_BYTES",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
]
