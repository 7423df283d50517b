"""Reading a values file safely: bounded in size, UTF-8 only, YAML without aliases.

A values file comes from a user and may be anything: another encoding, a binary, a "billion
laughs" alias bomb, a value of a million characters. Each is refused with a ``ConfigError``
naming the file, and no message quotes more than a short excerpt of any value.
"""

from __future__ import annotations

import codecs
import reprlib
from pathlib import Path
from typing import Any

import yaml

from obslib.errors import ConfigError

MAX_VALUES_BYTES = 1 << 20  # a values file is a few dozen lines; a larger file is a mistake
EXCERPT_CHARS = 60  # the most of any value an error message quotes


class _AliasRefused(Exception):
    """An alias in a values file, at ``line`` (1-based)."""

    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(anchor, line)
        self.anchor, self.line = anchor, line


class _ValuesLoader(yaml.SafeLoader):
    """The safe loader without aliases.

    A values file has no use for anchors and aliases, and expanding nested aliases is how a
    few hundred bytes become gigabytes (the "billion laughs" file): refuse them outright.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose the next node, refusing an alias (``*name``, also in ``<<: *name``)."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.anchor or "", event.start_mark.line + 1)
        return super().compose_node(parent, index)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = EXCERPT_CHARS
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxtuple = 4
_REPR.maxlevel = 2


def excerpt(value: Any) -> str:
    """A short ``repr`` of ``value`` for an error message, never the whole of a large value."""
    return cut(_REPR.repr(value), EXCERPT_CHARS)


def kind(value: Any) -> str:
    """What a YAML value is, in the words a values file uses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a YAML {type(value).__name__}"


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(
            f"{path}: the values file is UTF-16 (or UTF-32) text; a values file must be UTF-8. "
            "Save it as UTF-8."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); a values "
            "file must be UTF-8 YAML. Save it as UTF-8, or check that this is the file you meant."
        ) from None
    if "\0" in text:
        raise ConfigError(
            f"{path}: holds NUL bytes, so it is a binary (or UTF-16) file, not YAML; a values "
            "file must be UTF-8 YAML text."
        )
    return text


def read_values_file(path: Path) -> dict[str, Any]:
    """The mapping a values file holds, or a ConfigError naming the file and what is wrong."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_VALUES_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the values file ({exc.strerror or exc}).") from exc
    if len(raw) > MAX_VALUES_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_VALUES_BYTES // 1024} KiB, too large for a values file "
            "(a few dozen lines of settings); check that this is the file you meant."
        )
    text = _decode(raw, path)
    loader = _ValuesLoader(text)
    loader.name = str(path)  # error marks name the file
    try:
        data = loader.get_single_data()
    except _AliasRefused as exc:
        raise ConfigError(
            f"{path}: line {exc.line} uses the alias *{cut(exc.anchor, 40)}; anchors and "
            "aliases (also merge keys `<<: *name`) are not allowed in a values file. Write the "
            "value out in full."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path}: not valid YAML ({cut(str(exc), 600)}). Fix the syntax."
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a values file.") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits, a bad date
        raise ConfigError(
            f"{path}: a value cannot be read ({cut(str(exc), 200)}). Quote it to make it a string."
        ) from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {kind(data)}.")
    return data
