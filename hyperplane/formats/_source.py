"""Reading the text of topology and snapshot files: bytes -> str -> parsed document.

Every failure is a :class:`~hyperplane.errors.TopologyError` whose ``where`` is ``line L,
column C`` (``line`` and ``column`` set too) and whose problem is one line: invalid UTF-8, a
YAML or JSON syntax error, a control character, a key given twice, nesting too deep. Both
loaders share this so that a file is read the same way whatever its kind.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
import sys
import warnings
from pathlib import Path
from collections.abc import Hashable
from typing import Any, NoReturn

import yaml

from hyperplane.errors import RepairWarning, TopologyError

__all__ = ["REPAIR_HINT", "ascii_int", "caller_level", "decode", "load_json", "load_yaml", "position", "warn_repair"]

#: The end of an error that a lenient load would repair.
REPAIR_HINT = "load with repair=True (the command line's --repair) to re-allocate it from its subnet"

_BOM = "\ufeff"
_ASCII_INT = re.compile(r"-?[0-9]+")
#: Flow nesting deeper than this is refused before the parsers recurse (Python's own limit is
#: about 1000 frames; a topology is a few levels deep).
MAX_DEPTH = 200


def ascii_int(text: str) -> int | None:
    """``text`` as an int when it is ASCII digits (optionally ``-``), else ``None``.

    ``str.isdigit()`` and ``\\d`` accept other scripts' digits (``'١٠٠'``, ``'²'``); ``int()``
    takes some of those and not others, so numbers in files are ASCII or refused.
    """
    stripped = text.strip()
    if len(stripped) > 4000 or not _ASCII_INT.fullmatch(stripped):  # int() refuses > 4300 digits
        return None
    return int(stripped)


def position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of character ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _fail(name: str, line: int, column: int, problem: str) -> NoReturn:
    problem = " ".join(problem.split())  # one line, whatever the parser wrote
    raise TopologyError(name, f"line {line}, column {column}", problem, line=line, column=column)


def read_text(path: Path, name: str) -> str:
    """A file's text (:func:`decode`d), or a TopologyError naming it: missing, unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TopologyError(name, "", "no such file") from None
    except OSError as exc:
        raise TopologyError(name, "", f"cannot read the file: {exc.strerror or exc}") from None
    return decode(data, name)


def decode(data: bytes, name: str) -> str:
    """UTF-8 text without a leading BOM (editors on Windows write one; RFC 8259 lets a JSON
    reader ignore it); invalid UTF-8 is refused at the line and column of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[:exc.start].decode("utf-8")
        line, column = position(good, len(good))
        _fail(name, line, column, f"invalid UTF-8: byte 0x{data[exc.start]:02x} ({exc.reason})")
    return text[1:] if text.startswith(_BOM) else text


def _check_depth(text: str, name: str) -> None:
    """Refuse ``[[[[...`` nested past :data:`MAX_DEPTH` (both parsers recurse per level)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth, quote = 0, ""
    for offset, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = position(text, offset)
                _fail(name, line, column, f"nesting deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == "\n":
            quote = ""  # a YAML plain scalar may hold a lone quote; do not let it hide the rest


class _DuplicateKey(Exception):
    def __init__(self, key: object, offset: int | None = None, line: int = 0, column: int = 0) -> None:
        self.key, self.offset, self.line, self.column = key, offset, line, column


class _UnhashableKey(Exception):
    def __init__(self, line: int, column: int) -> None:
        self.line, self.column = line, column


# -- YAML -----------------------------------------------------------------------------------


class _BadScalar(Exception):
    def __init__(self, line: int, column: int, problem: str) -> None:
        self.line, self.column, self.problem = line, column, problem


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key repeated in one mapping (a silent typo otherwise)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's scalar constructors raise a bare ValueError (``2020-02-30``, ``!!int x``, an
        # int of 5000 digits): give it the scalar's place
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            if "integer string conversion" in str(exc):
                exc = ValueError("a number with too many digits")
            raise _BadScalar(node.start_mark.line + 1, node.start_mark.column + 1,
                             f"invalid YAML value {node.value[:40]!r}: {exc}"
                             if isinstance(node, yaml.ScalarNode) else f"invalid YAML: {exc}") from None


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    result: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        mark = key_node.start_mark
        if not isinstance(key, Hashable):
            raise _UnhashableKey(mark.line + 1, mark.column + 1)
        if key in result:
            raise _DuplicateKey(key, line=mark.line + 1, column=mark.column + 1)
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, name: str) -> Any:
    """The document of a YAML text (safe types only, unique keys)."""
    _check_depth(text, name)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        _fail(name, exc.line, exc.column, f"key {exc.key!r} appears twice in one mapping")
    except _UnhashableKey as exc:
        _fail(name, exc.line, exc.column, "a mapping key must be a plain value, not a list or a mapping")
    except _BadScalar as exc:
        _fail(name, exc.line, exc.column, exc.problem)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: no mark, an offset
        line, column = position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        _fail(name, line, column, f"invalid YAML: character U+{code:04X} is not allowed (control characters "
                                  "other than tab, line feed and carriage return cannot appear in YAML)")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        context = ""
        if exc.context and exc.problem:
            context = f" ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                context += f" that starts at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
            context += ")"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        _fail(name, line, column, f"invalid YAML: {problem}{context}")
    except yaml.YAMLError as exc:  # no mark at all (not raised by PyYAML today): the whole text
        _fail(name, 1, 1, f"invalid YAML: {exc}")


# -- JSON -----------------------------------------------------------------------------------


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _duplicate_offset(text: str) -> int | None:
    """Where the object holding a repeated key starts: the pure-Python scanner, which passes
    each object's offset, run again only on this error path."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)

    def parse_object(s_and_end: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        try:
            return json.decoder.JSONObject(s_and_end, *args, **kwargs)  # type: ignore[attr-defined]
        except _DuplicateKey as exc:
            if exc.offset is None:
                exc.offset = s_and_end[1] - 1  # the innermost object: its "{"
            raise

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    try:
        decoder.decode(text)
    except _DuplicateKey as exc:
        return exc.offset
    except (ValueError, RecursionError):
        pass
    return None


def load_json(text: str, name: str) -> Any:
    """The document of a JSON text (unique keys)."""
    _check_depth(text, name)
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        offset = _duplicate_offset(text)
        line, column = position(text, offset) if offset is not None else (1, 1)
        _fail(name, line, column, f"key {exc.key!r} appears twice in the object that starts here")
    except json.JSONDecodeError as exc:
        _fail(name, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")
    except ValueError as exc:  # an integer past int()'s 4300 digits: the only other ValueError
        found = re.search(r"[0-9]{4000,}", text)
        line, column = position(text, found.start()) if found else (1, 1)
        _fail(name, line, column, "invalid JSON: a number with too many digits")


# -- lenient loading ------------------------------------------------------------------------


def caller_level() -> int:
    """The stack level of the first frame outside the hyperplane package (the user's call)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def warn_repair(message: str) -> None:
    """One :class:`~hyperplane.errors.RepairWarning` for one repaired resource."""
    warnings.warn(message, RepairWarning, stacklevel=caller_level())
