"""Measurement quality: the suite's spread and load verdict, its one re-measure, the flag through convert and
training, and the warnings a forecast built on noisy pairs or past the trained speed-ups carries."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from profcast.collect import quality
from profcast.collect.quality import SPREAD_LIMIT, judge
from profcast.ingest.profile_files import read_profile_tree
from profcast.jobmodel.measurement import forecast_warnings, measurement_record
from profcast.schema import NOISY_MEASUREMENT
from tests.test_collect_suite import FakeRuns, manifest_of, smoke, suite_in, template_trace  # noqa: F401


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(quality, "usable_cores", lambda: 2)


def test_steady_steps_on_an_idle_machine_are_not_noisy(two_cores):
    verdict = judge({"step_seconds": [0.10, 0.12, 0.11], "load_average": 1.9})
    assert verdict["step_spread"] == pytest.approx(1.2) and verdict["noisy"] is False and verdict["noise"] is None


def test_a_spread_past_the_limit_is_noisy_and_says_by_how_much(two_cores):
    verdict = judge({"step_seconds": [0.1, 0.1, 0.1 * (SPREAD_LIMIT + 0.5)], "load_average": 0.5})
    assert verdict["noisy"] and verdict["step_spread"] == pytest.approx(SPREAD_LIMIT + 0.5)
    assert "slowest of 3 timed steps 2.00x the fastest" in verdict["noise"]


def test_a_load_above_the_cores_is_noisy_even_with_steady_steps(two_cores):
    verdict = judge({"step_seconds": [0.1, 0.1], "load_average": 2.6})
    assert verdict["noisy"] and verdict["noise"] == "load average 2.6 on 2 cores: other work competed for them"
    assert judge({"step_seconds": [0.1, 0.1], "load_average": 2.5})["noisy"] is False  # cores + 0.5 is the edge


def test_a_workload_flagged_by_the_load_alone_is_not_measured_again(tmp_path, template_trace, two_cores):
    busy = smoke()[0].name
    runs = TimedRuns(template_trace, {busy: [{"step_seconds": [0.1, 0.1, 0.1], "load_average": 9.0}]})
    suite_in(tmp_path, runs)
    record = manifest_of(tmp_path)["workloads"][busy]
    assert runs.calls.count(busy) == 1 and record["noisy"] is True and "measured" not in record


def test_nothing_timed_means_no_verdict():
    assert judge(None) == {} and judge({"step_seconds": []}) == {}


class TimedRuns(FakeRuns):
    """Copies the template trace and returns the timings ``timings[name]`` gives, one per call, in turn."""

    def __init__(self, template, timings):
        super().__init__(template)
        self.timings = {name: list(values) for name, values in timings.items()}

    def __call__(self, workload, path, device):
        super().__call__(workload, path, device)
        queue = self.timings.get(workload.name)
        return queue.pop(0) if queue else {"step_seconds": [0.1, 0.1, 0.1], "load_average": 0.0}


NOISY = {"step_seconds": [0.1, 0.5, 0.1], "load_average": 0.0}
STEADY = {"step_seconds": [0.1, 0.1, 0.1], "load_average": 0.0}


def test_a_noisy_workload_is_measured_once_more_and_flagged_only_if_it_stays_noisy(tmp_path, template_trace, two_cores):
    passing, staying = smoke()[1].name, smoke()[2].name
    runs = TimedRuns(template_trace, {passing: [NOISY, STEADY], staying: [NOISY, NOISY]})
    result = suite_in(tmp_path, runs)

    records = manifest_of(tmp_path)["workloads"]
    assert runs.calls.count(passing) == 2 and runs.calls.count(staying) == 2 and runs.calls.count(smoke()[0].name) == 1
    assert records[passing]["noisy"] is False and records[passing]["measured"] == 2
    assert records[staying]["noisy"] is True and records[staying]["step_spread"] == pytest.approx(5.0)
    assert records[smoke()[0].name]["noisy"] is False and "measured" not in records[smoke()[0].name]
    assert result.manifest.noisy() == [staying] and {r["status"] for r in records.values()} == {"done"}

    table = read_profile_tree(tmp_path).profiles  # convert and data=file carry the verdict
    flags = dict(
        zip(
            table["dataset"] + "-" + table["model"] + "-sgd-" + table["batchsize"].astype(str), table[NOISY_MEASUREMENT]
        )
    )
    assert flags[staying] == 1.0 and flags[passing] == 0.0 and sum(flags.values()) == 1.0


def test_traces_without_a_verdict_carry_no_flag_column(tmp_path, template_trace):
    folder = tmp_path / "exp" / "a"
    folder.mkdir(parents=True)
    shutil.copy(template_trace, folder / "cifar10-resnet-sgd-4.pt.trace.json.gz")
    assert NOISY_MEASUREMENT not in read_profile_tree(tmp_path).profiles.columns
    (folder / "suite-manifest.json").write_text(json.dumps({"workloads": {"cifar10-resnet-sgd-4": {"status": "done"}}}))
    assert NOISY_MEASUREMENT not in read_profile_tree(tmp_path).profiles.columns  # recorded before any verdict


def catalogue(rows):
    """Profiles of instances a (anchor) and b: (instance, model, batch_latency, noisy)."""
    return pd.DataFrame(
        [
            {
                "exp_name": "e",
                "instance_name": i,
                "dataset": "d",
                "model": m,
                "optimizer": "sgd",
                "batchsize": 4,
                "batch_latency": latency,
                NOISY_MEASUREMENT: noisy,
                "Device_Conv2D": 1.0,
            }
            for i, m, latency, noisy in rows
        ]
    )


def test_the_record_counts_pairs_noisy_pairs_and_the_speedups_they_showed():
    profiles = catalogue(
        [
            ("a", "vgg", 1.0, 0.0),
            ("b", "vgg", 0.5, 0.0),
            ("a", "resnet", 2.0, 1.0),
            ("b", "resnet", 0.5, 0.0),
            ("a", "lenet", 1.0, 0.0),
        ]  # lenet ran on the anchor only: no pair
    )
    assert measurement_record(profiles, "a", ["b"]) == {"b": {"pairs": 2, "noisy_pairs": 1, "speedup": [2.0, 4.0]}}
    assert measurement_record(profiles.drop(columns=[NOISY_MEASUREMENT]), "a", ["b"])["b"]["noisy_pairs"] == 0


def test_a_forecast_warns_on_noisy_pairs_and_on_speedups_past_the_trained_range():
    record = {
        "b": {"pairs": 4, "noisy_pairs": 3, "speedup": [2.0, 4.0]},
        "c": {"pairs": 4, "noisy_pairs": 0, "speedup": [0.5, 1.0]},
    }
    table = pd.DataFrame({"instance": ["b", "c", "a"], "speedup": [294.0, 0.9, 1.0]})
    notes = forecast_warnings(record, table)
    assert notes[0].startswith("WARNING: trained on pairs measured noisy") and "b (3 of 4)" in notes[0]
    assert "c (" not in notes[0]
    assert notes[1:] == [
        "WARNING: b: a 294.00x speed-up, beyond any its training pairs showed (2.00x to 4.00x): an extrapolation"
    ]
    inside = pd.DataFrame({"instance": ["b", "c"], "speedup": [4.9, 0.45]})  # within the 1.25x slack of the range
    assert forecast_warnings({**record, "b": {**record["b"], "noisy_pairs": 0}}, inside) == []
    assert forecast_warnings(None, table) == [] and forecast_warnings({}, table) == []
