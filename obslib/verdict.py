"""Three-valued verdicts: no data is never a pass."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """Outcome of a check; ``INCONCLUSIVE`` when the evidence is missing."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @classmethod
    def combine(cls, verdicts: list[Verdict]) -> Verdict:
        """Any failure fails; otherwise any missing evidence is inconclusive; all passing passes."""
        if not verdicts:
            return cls.INCONCLUSIVE
        if cls.FAIL in verdicts:
            return cls.FAIL
        if cls.INCONCLUSIVE in verdicts:
            return cls.INCONCLUSIVE
        return cls.PASS
