import pandas as pd

from obslib.analysis.slo.alert_replay import episodes


def samples(points):
    """points: [(series label value, unix seconds)]"""
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime([t for _, t in points], unit="s", utc=True),
            "value": 1.0,
            "series": [f'{{pod="{p}"}}' for p, _ in points],
            "pod": [p for p, _ in points],
            "job": "",
        }
    )


def test_for_is_honoured_per_label_set_and_gaps_end_episodes():
    points = [("a", t) for t in range(0, 600, 60)]  # 0..540: 10 evaluations
    points += [("b", t) for t in range(0, 180, 60)]  # 0..120: resolves before 5m
    points += [("a", t) for t in range(900, 1260, 60)]  # a second episode of a
    out = episodes(samples(points), "X", for_s=300, step_s=60).sort_values(["series", "pending_at"])
    assert out[["series", "fired"]].values.tolist() == [
        ['{pod="a"}', True],
        ['{pod="a"}', True],
        ['{pod="b"}', False],
    ]
    first = out.iloc[0]
    assert first.firing_at == pd.Timestamp(300, unit="s", tz="UTC")
    assert first.resolved_at == pd.Timestamp(600, unit="s", tz="UTC")
    assert first.labels == {"pod": "a"}  # empty label columns are absent labels
    assert out.iloc[1].firing_at == pd.Timestamp(1200, unit="s", tz="UTC")
    assert pd.isna(out.iloc[2].firing_at)


def test_without_for_the_first_match_fires():
    out = episodes(samples([("a", 60)]), "X", for_s=0, step_s=60)
    assert out.fired.tolist() == [True] and out.firing_at.iloc[0] == out.pending_at.iloc[0]


def test_no_samples_no_episodes():
    assert episodes(pd.DataFrame(), "X", 60, 60).empty


def test_noise_table_when_nothing_fired(history_stack, catalogue):
    """A quiet window: every alert has a row, with no firing time (regression: all-NaT columns)."""
    from obslib.analysis.crosscheck import alert_noise

    source, truth = history_stack
    quiet = truth.incident("worker-image-pull").start - 2 * 3600
    noise = alert_noise(source, catalogue, quiet - 3600, quiet)
    assert len(noise) == len(catalogue.alerts) and (noise["fired"] == 0).all()
    assert (
        noise["first_fired"].isna().all()
        and str(noise["first_fired"].dtype) == "datetime64[ns, UTC]"
    )
