from datetime import timedelta

import pytest

from obslib.catalogue.alerts import AlertSpec
from obslib.durations import seconds, step_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (15, 15.0),
        (2.5, 2.5),
        ("90", 90.0),
        (timedelta(minutes=2), 120.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1w", 604800.0),
    ],
)
def test_seconds_of_numbers_timedeltas_and_prometheus_text(value, expected):
    assert seconds(value) == expected


@pytest.mark.parametrize("text", ["5x", "1.5m", "m", "10 m", "1h 30m"])
def test_text_that_is_no_duration_is_refused(text):
    with pytest.raises(ValueError):
        seconds(text)


@pytest.mark.parametrize("step", [0, -15, "0s", timedelta(0)])
def test_a_step_must_be_positive(step):
    with pytest.raises(ValueError, match="positive"):
        step_seconds(step)


def test_an_alert_without_for_fires_at_once(catalogue):
    bare = AlertSpec("X", "g", "c", "up == 0", "warning", "x", "s", "d")
    assert bare.for_s == 0
    assert {a.for_: a.for_s for a in catalogue.alerts if a.for_} == {
        "2m": 120,
        "5m": 300,
        "10m": 600,
    }
