"""Vectorised index of a span frame: trace codes, the hop of each span, its parent row.

The trace audit (:mod:`obslib.analysis.traces.audit`) is built on these arrays, and so is which
task each span belongs to (:mod:`obslib.analysis.traces.membership`). Nothing here loops over
spans in Python: ids are parsed from hex in bulk (a 32-character trace id is two 64-bit words, a
16-character span id one), which is far faster than hashing the strings; a frame whose ids are
not all well-formed hex falls back to hashing the text. Loops run over the profile's hops only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from obslib.catalogue.hops import AGENT_TYPE, DESTINATION, TASK_ID, HopProfile

ROOT = -1  # parent row of a span with an empty parent_span_id
MISSING = -2  # parent row of a span whose parent id is no span of its trace
_ATTRIBUTE_COLUMNS = {DESTINATION: "destination", TASK_ID: "task_id", AGENT_TYPE: "agent_type"}


def text(spans: pd.DataFrame, column: str) -> np.ndarray:
    """A text column as an object array of ``str``, missing values as ""."""
    return spans[column].to_numpy(dtype=object, na_value="")


class Texts:
    """Text columns of one span frame, each converted once."""

    def __init__(self, spans: pd.DataFrame) -> None:
        self.spans = spans
        self._done: dict[str, np.ndarray] = {}

    def __call__(self, column: str) -> np.ndarray:
        """The column as :func:`text` gives it."""
        if column not in self._done:
            self._done[column] = text(self.spans, column)
        return self._done[column]


def _hex_words(ids: np.ndarray, width: int) -> np.ndarray | None:
    """Hex ids ("" for none) as 64-bit words, shape (n, width // 16); None if any is not hex."""
    n = len(ids)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    empty = lengths == 0
    if not np.all(empty | (lengths == width)):
        return None
    if empty.any():
        ids = np.where(empty, "0" * width, ids)
    try:
        raw = bytes.fromhex("".join(ids))
    except ValueError:
        return None
    if len(raw) != n * width // 2:  # fromhex skips whitespace
        return None
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(n, width // 16)


def first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of the first occurrence of each code, for codes numbered in order of appearance."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)


def _trace_codes(trace_ids: np.ndarray) -> np.ndarray:
    words = _hex_words(trace_ids, 32)
    if words is not None:
        codes, _ = pd.factorize(words[:, 1])
        first = first_rows(codes)
        if np.array_equal(words[first[codes], 0], words[:, 0]):  # no two ids share a low word
            return codes.astype(np.int64)
    return pd.factorize(trace_ids)[0].astype(np.int64)


def _span_codes(span_ids: np.ndarray, parent_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(span_ids)
    own, parent = _hex_words(span_ids, 16), _hex_words(parent_ids, 16)
    if own is not None and parent is not None:
        values = np.concatenate([own[:, 0], parent[:, 0]])
    else:
        values = np.concatenate([span_ids, parent_ids])
    codes = pd.factorize(values)[0].astype(np.int64)
    return codes[:n], codes[n:]


def starts_with(values: np.ndarray, prefix: str) -> np.ndarray:
    """Whether each text of ``values`` starts with ``prefix`` (a bool array)."""
    return np.strings.startswith(values.astype(str), prefix) if values.size else values.astype(bool)


def strip_prefix(values: np.ndarray, prefix: str) -> np.ndarray:
    """``values`` (all starting with ``prefix``) without it, as an object array."""
    if not values.size or not prefix:
        return values
    return np.strings.slice(values.astype(str), len(prefix), None).astype(object)


def hop_codes(
    spans: pd.DataFrame, profile: HopProfile, texts: Texts | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The profile hop (index into ``profile.hops``, -1 for none) of each span, and a wrong-kind flag.

    A span is a hop's when its name matches, and for same-named hops when the hop's attribute
    starts with the hop's prefix. Spans matching name and kind are assigned first; a span that
    matches a hop in everything but the kind is assigned to it with ``wrong_kind`` set, so the
    audit reports a kind error rather than a missing hop.
    """
    texts = texts or Texts(spans)
    names, name_values = pd.factorize(texts("name"))
    kinds, kind_values = pd.factorize(texts("kind"))
    name_code = {v: i for i, v in enumerate(name_values)}
    kind_code = {v: i for i, v in enumerate(kind_values)}
    hop = np.full(len(spans), -1, dtype=np.int64)
    wrong_kind = np.zeros(len(spans), dtype=bool)
    # Hops told apart by a prefix go first, so a prefix-less hop of the same name only takes the rest.
    order = sorted(range(len(profile.hops)), key=lambda i: not profile.hops[i].match_prefix)
    for strict in (True, False):
        for i in order:
            h = profile.hops[i]
            mask = (names == name_code.get(h.span, -2)) & (hop == -1)
            if strict:
                mask &= kinds == kind_code.get(h.kind, -2)
            if h.match_prefix and mask.any():
                if h.match_attribute not in _ATTRIBUTE_COLUMNS:
                    raise ValueError(
                        f"hop {h.key} matches on attribute {h.match_attribute!r}, "
                        "which the span frame has no column for"
                    )
                rows = np.flatnonzero(mask)
                values = texts(_ATTRIBUTE_COLUMNS[h.match_attribute])[rows]
                mask[rows] = starts_with(values, h.match_prefix)
            hop[mask] = i
            wrong_kind[mask] = not strict
    return hop, wrong_kind


def _rewritten_ids(texts: Texts, parent: np.ndarray) -> np.ndarray:
    """SERVER spans whose id Tempo rewrote because they shared their CLIENT parent's id.

    Tempo's span-id deduper gives such a span the lowest unused id (``0000000000000001``) and
    makes the shared id its parent; nothing else marks it. Random 64-bit ids below 2^16 do not
    occur otherwise (one in 2^48).
    """
    span_ids, kinds = texts("span_id"), texts("kind")
    small = starts_with(span_ids, "0" * 12) & (span_ids != "0" * 16)
    has = parent >= 0
    above = np.maximum(parent, 0)
    return small & has & (kinds == "SERVER") & (kinds[above] == "CLIENT")


@dataclass(frozen=True)
class SpanIndex:
    """Per-span arrays (row order of the frame) and per-trace ids."""

    trace: np.ndarray  # dense trace code
    trace_ids: np.ndarray  # trace id text per trace code
    key: np.ndarray  # (trace, span id) as one int64
    parent_key: np.ndarray  # (trace, parent span id) as one int64
    parent: np.ndarray  # parent row, ROOT or MISSING
    duplicate: np.ndarray  # the (trace, span id) pair occurs more than once, or Tempo rewrote it
    rewritten: np.ndarray  # Tempo gave the span a fresh id: it had its CLIENT parent's id
    hop: np.ndarray  # index into the profile's hops, -1 for a span of no hop
    wrong_kind: np.ndarray
    start: np.ndarray
    end: np.ndarray
    text: Texts  # the frame's text columns

    @property
    def n_traces(self) -> int:
        """How many distinct traces the frame holds."""
        return len(self.trace_ids)


def index_spans(spans: pd.DataFrame, profile: HopProfile) -> SpanIndex:
    """Build the :class:`SpanIndex` of a non-empty span frame (columns of ``SPAN_COLUMNS``)."""
    texts = Texts(spans)
    trace_text = texts("trace_id")
    trace = _trace_codes(trace_text)
    parent_text = texts("parent_span_id")
    span_code, parent_code = _span_codes(texts("span_id"), parent_text)
    width = int(max(span_code.max(initial=0), parent_code.max(initial=0))) + 1
    key, parent_key = trace * width + span_code, trace * width + parent_code

    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    dup_sorted = np.zeros(len(key), dtype=bool)
    dup_sorted[1:] |= same
    dup_sorted[:-1] |= same
    duplicate = np.empty_like(dup_sorted)
    duplicate[order] = dup_sorted

    has_parent = np.fromiter(map(bool, parent_text), dtype=bool, count=len(parent_text))
    n = len(key)
    pos = np.minimum(np.searchsorted(sorted_keys, parent_key), n - 1)
    parent = np.where(
        has_parent, np.where(sorted_keys[pos] == parent_key, order[pos], MISSING), ROOT
    )
    # A span is never its own parent: one that names its own id (it reused its caller's id)
    # hangs under the other span with that id, or is an orphan when there is none.
    loop = np.flatnonzero(parent == np.arange(n))
    if loop.size:
        after = np.minimum(pos[loop] + 1, n - 1)
        other = (sorted_keys[after] == parent_key[loop]) & (order[after] != loop)
        parent[loop] = np.where(other, order[after], MISSING)
    rewritten = _rewritten_ids(texts, parent)
    duplicate |= rewritten
    hop, wrong_kind = hop_codes(spans, profile, texts)
    return SpanIndex(
        trace=trace,
        trace_ids=trace_text[first_rows(trace)],
        key=key,
        parent_key=parent_key,
        parent=parent.astype(np.int64),
        duplicate=duplicate,
        rewritten=rewritten,
        hop=hop,
        wrong_kind=wrong_kind,
        start=spans["start_ns"].to_numpy(dtype=np.int64),
        end=spans["end_ns"].to_numpy(dtype=np.int64),
        text=texts,
    )
