"""What a replay says about each packet and each conversation (``hyperplane.replay``): the
labels of walked rows (the ENI where a packet ended, the hop that decided, whether it picked its
connection up mid-stream), the verdicts file, the capture's own addresses in the outputs, and
the conversations' outcomes."""

from __future__ import annotations

import json
import threading
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane._core import _text, _verdicts, _walk
from hyperplane.dataplane.walk import _DISPOSITION as _DISPOSITION_OF
from hyperplane.dataplane.walk import COLUMNS, BatchResult
from hyperplane.formats.capture import CaptureChunk, PacketKind
from hyperplane.reasons import Disposition, Reason
from hyperplane.records import ACK, FIN, RST, SYN, TCP, UDP
from hyperplane.tables.nat import NatStatus
from hyperplane.trace import render_hops


_SEP = b"\x1f"
_V2N_OUT, _NAT_OUT = _walk.STAGES.index("v2n_out"), _walk.STAGES.index("nat_out")
_V2N_IN, _NAT_IN = _walk.STAGES.index("v2n_in"), _walk.STAGES.index("nat_in")
# the values of a translating hop that name its resource and decision (pool or NAT gateway,
# status, the Hyperplane ENI's address), by stage; the others are the connection's own tuple,
# which the verdict line has already (so labels stay few: one per resource and rule)
_KEPT = np.ones((len(_walk.STAGES), 6), bool)
_KEPT[_V2N_OUT] = [True, True, False, False, True, False]
_KEPT[_V2N_IN] = [True, True, True, False, False, False]
_KEPT[_NAT_OUT] = _KEPT[_NAT_IN] = [True, True, False, False, False, False]
_STAGE_COLUMNS = [COLUMNS[name] for name in _walk.STAGES]


def label(eni: str, stage: str, resource: str, rule: str, picked_up: bool) -> bytes:
    """What a verdict line says besides the reason, as one word of a replay's label table:
    the ENI where the packet ended, the deciding hop (stage, resource, rule) and whether the
    packet picked up its connection mid-stream."""
    return _SEP.join(part.encode() for part in (eni, stage, resource, rule, "1" if picked_up else ""))


def labels_of(res: BatchResult, labels: dict[bytes, int], pool_names: list[str]) -> np.ndarray:
    """Each walked row's label index (into ``labels``, extended): the ENI of its location, the
    hop that decided (its last one, as the trace shows it; where it stopped when that hop let it
    pass) and whether a V2N or NAT gateway hop opened a connection for a TCP ACK (picked up).

    The rows' keys (what a label depends on) are found and numbered in compiled code
    (``hyperplane._core._verdicts``), once per compilation and pool names: a replay renders the
    text of each distinct label once, not once per chunk."""
    vpc = res.vpc
    assert vpc is not None  # a pipeline's results carry its compilation
    keys, texts = _label_table(vpc, pool_names)
    facts = res.facts
    codes = keys.codes(facts.hops, facts.first_hop, np.ascontiguousarray(res.packets),
                       np.ascontiguousarray(res.location, np.int32), np.ascontiguousarray(res.reason, np.uint8))
    for number in range(len(texts), len(keys)):  # keys seen for the first time
        texts.append(_render(vpc, pool_names, *keys.key(number)))
    distinct, inverse = _verdicts.first_appearance(codes, len(keys))
    index = np.array([labels.setdefault(texts[c], len(labels)) for c in distinct.tolist()], np.int32)
    return index[inverse]


# a compilation -> its pool names -> (the label keys, the text of each): the walk's results of a
# compilation are labelled the same way for as long as it lives
_LABEL_TABLES: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], tuple[_verdicts.LabelKeys, list[bytes]]]] = \
    weakref.WeakKeyDictionary()
_LABEL_LOCK = threading.Lock()  # a parallel replay's threads may label at once


def _label_table(vpc: Any, pool_names: list[str]) -> tuple[_verdicts.LabelKeys, list[bytes]]:
    with _LABEL_LOCK:
        tables = _LABEL_TABLES.setdefault(vpc, {})
        found = tables.get(tuple(pool_names))
        if found is None:
            found = tables[tuple(pool_names)] = (_verdicts.LabelKeys(_KEPT.view(np.uint8)), [])
        return found


def _render(vpc: Any, pool_names: list[str], location: int, code: int, picked: bool, last_stage: int,
            kept: tuple[int, ...]) -> bytes:
    """The label of a key (``_verdicts.LabelKeys.key``), as the trace names the hop."""
    eni = vpc.enis[location].id if location >= 0 else ""
    stage, resource, rule = "", eni, ""
    if last_stage >= 0:
        name = _walk.STAGES[last_stage]
        values = {c: int(np.asarray(x, np.int32).astype(dt)) for (c, dt), x in zip(_STAGE_COLUMNS[last_stage], kept)}
        shown = render_hops(vpc, [(name, values)], vpc.nat_ids, pool_names)
        reason = Reason(code)
        if shown and (reason.disposition.delivered or shown[0].decision in ("deny", "drop")):
            hop = shown[0]
            stage, resource = hop.stage, hop.resource
            if last_stage in (_V2N_OUT, _V2N_IN, _NAT_OUT, _NAT_IN):  # what the table did
                rule = NatStatus(values["status"]).name
            elif hop.stage.startswith(("sg-", "nacl-", "route")):
                # the rule without the place the trace names before it ("subnet-x: ", "on eni-x: ")
                rule = hop.detail.split(": ", 1)[1]
            else:
                rule = hop.detail
        else:  # the last hop let it pass: it ended where it stopped, as the trace says
            stage, rule = "end", reason.text
    return label(eni, stage, resource, rule, picked)


class Labels:
    """A chunk's label table split into its columns (``label``)."""

    def __init__(self, labels: list[bytes]) -> None:
        parts = [label.split(_SEP) for label in labels] + [[b""] * 5]  # the last: no label (-1)
        self.eni, self.stage, self.resource, self.rule = ([p[k] for p in parts] for k in range(4))
        self.picked_up = np.array([p[4] == b"1" for p in parts], bool)


def capture_addresses(capture: np.ndarray, out: np.ndarray, environments: Any) -> np.ndarray:
    """``out`` with every execution-environment address (the walk's internal one) replaced by
    the capture's own address in that field: a reply delivered to a function goes to the
    address the capture shows, e.g. 172.16.5.10, not 169.254.0.1. (``out`` itself when no
    address is internal; in compiled code, ``hyperplane._core._verdicts``.)"""
    return _verdicts.capture_addresses(np.ascontiguousarray(capture), np.ascontiguousarray(out),
                                       int(environments.network_address), int(environments.netmask))


class Conversations:
    """TCP and UDP conversations (the two directions of a 5-tuple, in the capture's addresses),
    followed across chunks: it is established once a packet of each side has been delivered
    (in either order: a capture that begins mid-stream may show the answer first); otherwise it
    failed where its first refused packet was refused, or, with nothing refused, went
    unanswered. Followed in compiled code (``hyperplane._core._verdicts.ConversationTable``)."""

    def __init__(self) -> None:
        self.table = _verdicts.ConversationTable()
        self.resources: dict[str, int] = {}  # the deciding resources of refusals ("-": none), numbered

    def add(self, chunk: CaptureChunk, delivered: np.ndarray, reason: np.ndarray, label: np.ndarray,
            labels: Labels) -> None:
        rec = chunk.records
        proto = rec["proto"]
        counted = (chunk.kind == PacketKind.EMULATED) & ((proto == TCP) | (proto == UDP))
        # a refusal's failure: its reason and its label's resource, as reason | resource number << 8
        resource = np.array([self.resources.setdefault(r.decode() or "-", len(self.resources))
                             for r in labels.resource], np.int32)
        failure = (resource[label] << 8) | reason.astype(np.int32)  # label -1: the last, no label
        self.table.add(np.ascontiguousarray(rec), counted.view(np.uint8),
                       np.ascontiguousarray(delivered, bool).view(np.uint8),
                       labels.picked_up[label].view(np.uint8), failure)

    def count(self) -> tuple[Counter, int, Counter]:
        """(conversations by outcome, how many established ones were picked up, the failed ones
        by "REASON resource")."""
        seen, failure = self.table.outcomes()
        established = (seen & 3) == 3
        failed = (failure >= 0) & ~established
        outcomes = Counter({"established": int(established.sum()), "failed": int(failed.sum()),
                            "unanswered": int((~established & ~failed).sum())})
        codes, first, counts = np.unique(failure[failed], return_index=True, return_counts=True)
        names = list(self.resources)
        at = Counter({f"{Reason(int(c) & 0xFF).name} {names[int(c) >> 8]}": int(k)  # in order of first failure
                      for _, c, k in sorted(zip(first.tolist(), codes.tolist(), counts.tolist()))})
        return outcomes, int(((seen & 4) > 0)[established].sum()), at


class VerdictSink:
    """One line per input packet: JSON lines (``.jsonl``/``.json``) or CSV (``.csv``), written by
    the compiled line writer (``hyperplane._core._text``)."""

    FIELDS = ["index", "time", "disposition", "reason", "resource", "src", "sport", "dst", "dport", "proto",
              "capture_src", "capture_sport", "capture_dst", "capture_dport", "decided_at", "decided_by", "rule",
              "picked_up"]
    TEXT = {"decided_at", "decided_by", "rule"}  # free text: quoted for the format
    _REASONS = [Reason(r).name.encode() if r in Reason._value2member_map_ else b"?" for r in range(256)]
    _DISPOSITIONS = [Disposition(d).name.encode() if d in Disposition._value2member_map_ else b"?"
                     for d in range(max(Disposition) + 1)]
    _ZEROS = [b"0" * k for k in range(10)]  # the leading zeros of a timestamp's nanoseconds

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.csv = self.path.suffix == ".csv"
        self.file = open(self.path, "wb")
        if self.csv:
            self.file.write((",".join(self.FIELDS) + "\n").encode())

    def _text(self, words: list[bytes]) -> list[bytes]:
        if self.csv:  # RFC 4180: quoted when it holds a comma or a quote
            return [b'"' + w.replace(b'"', b'""') + b'"' if b"," in w or b'"' in w else w for w in words]
        return [json.dumps(w.decode()).encode() for w in words]

    def write(self, chunk: CaptureChunk, reason: np.ndarray, label: np.ndarray, labels: Labels,
              out: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The lines of the chunk's rows (``rows``: only those, in order: a parallel replay's
        worker writes its own); returns where each line ends in what was written."""
        n = len(reason)
        capture = chunk.records
        label = np.where(label >= 0, label, len(labels.eni) - 1).astype(np.int32)
        seconds, nanoseconds = np.divmod(chunk.ts_ns, 1_000_000_000)
        digits = np.searchsorted(10 ** np.arange(1, 10), nanoseconds, side="right") + 1
        time = [(_text.INTEGER, seconds), (_text.CONSTANT, b"."), (_text.WORDS, (9 - digits).astype(np.int32),
                                                                   self._ZEROS), (_text.INTEGER, nanoseconds)]
        values: list[list[tuple]] = [
            [(_text.INTEGER, chunk.index + np.arange(n))], time,
            [(_text.WORDS, _DISPOSITION_OF[reason], self._DISPOSITIONS)], [(_text.WORDS, reason, self._REASONS)],
            [(_text.WORDS, label, labels.eni)],
            [(_text.ADDRESS, out["src_ip"])], [(_text.INTEGER, out["src_port"])],
            [(_text.ADDRESS, out["dst_ip"])], [(_text.INTEGER, out["dst_port"])], [(_text.INTEGER, out["proto"])],
            [(_text.ADDRESS, capture["src_ip"])], [(_text.INTEGER, capture["src_port"])],
            [(_text.ADDRESS, capture["dst_ip"])], [(_text.INTEGER, capture["dst_port"])],
            [(_text.WORDS, label, self._text(labels.stage))], [(_text.WORDS, label, self._text(labels.resource))],
            [(_text.WORDS, label, self._text(labels.rule))],
            [(_text.WORDS, labels.picked_up[label].astype(np.int32), [b"false", b"true"])],
        ]
        columns: list[tuple] = []
        if self.csv:
            for k, value in enumerate(values):
                if k:
                    columns.append((_text.CONSTANT, b","))
                columns += value
        else:  # {"index": 0, "disposition": "ACCEPTED", ...}: the JSON syntax as constant columns
            for k, (name, value) in enumerate(zip(self.FIELDS, values)):
                quote = '"' if value[0][0] in (_text.WORDS, _text.ADDRESS) and name not in self.TEXT \
                    and name != "picked_up" else ""
                opening = ("{" if k == 0 else ", ") + f'"{name}": {quote}'
                columns += [(_text.CONSTANT, opening.encode()), *value,
                            (_text.CONSTANT, (quote + "}" * (k == len(values) - 1)).encode())]
        text, offsets = _text.lines(columns, np.arange(n) if rows is None else rows, b"")
        self.file.write(text)
        return offsets[1:]

    def close(self) -> None:
        self.file.close()
