"""The README's "Where each capability lives" table names only paths that exist."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("obslib/", "tests/", "notebooks/", "benchmarks/", ".github/")


def expand(token: str) -> list[str]:
    """``a/{b,c}.py`` -> ``a/b.py``, ``a/c.py``."""
    match = re.search(r"\{([^}]*)\}", token)
    if not match:
        return [token]
    return list(
        itertools.chain.from_iterable(
            expand(token[: match.start()] + part + token[match.end() :])
            for part in match.group(1).split(",")
        )
    )


def table_paths() -> list[str]:
    text = (REPO / "README.md").read_text()
    table = text.split("## Where each capability lives", 1)[1].split("\n## ", 1)[0]
    paths = []
    for row in table.splitlines()[3:]:
        cell = row.split("|")[2] if row.count("|") >= 3 else ""
        base = ""
        for token in re.findall(r"`([^`]+)`", cell):
            if " " in token:
                continue  # a command, not a path
            if token.startswith(ROOTS):
                base = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
                paths += expand(token)
            elif token.endswith(".py") and base:
                paths += expand(base + token)
    return paths


def test_every_path_the_table_names_exists():
    paths = table_paths()
    assert len(paths) > 40
    missing = [p for p in paths if not any(REPO.glob(p.rstrip("/")))]
    assert missing == []
