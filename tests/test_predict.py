"""The recommendation CLI: every profile format, the champion default, real-data ranking, one-line errors."""

import csv
import json
import re

import mlflow
import pandas as pd
import pytest

from profcast.champions.register import register_job
from profcast.cli import exit_code
from profcast.datasets.embedded import embedded_tree_path
from profcast.ingest.tfstats import read_tfstats_export
from profcast.predict import main
from profcast.train import train
from tests.conftest import REAL_PROFET, TRAINED_JOB_ANCHOR, TRAINED_JOB_TARGETS, compose_train, store_with_trained_job

ANCHOR = TRAINED_JOB_ANCHOR
EMBEDDED_TARGETS = list(TRAINED_JOB_TARGETS)
EMBEDDED_RUN = "cifar10-vggsmall-sgd-64"  # a run file of the embedded study, with its latency sidecar
PROFET_WORKLOAD = {"exp_name": "exp01", "dataset": "64dataset", "model": "VGG11", "batchsize": 64}


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained_job):
    """An MLflow store of this module's own, with the shared job trained on the embedded data (not registered)."""
    trained = store_with_trained_job(trained_job, tmp_path_factory.mktemp("predict"))
    yield {"uri": trained["uri"], "experiment_id": trained["experiment_id"], "embedded_model": trained["model_uri"]}


@pytest.fixture
def tracking(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store


@pytest.fixture(scope="module")
def profet_champion(store, real_profet):
    """A ratio job on the real PROFET data from g3s.xlarge, registered as profcast-g3s.xlarge@champion (e2e)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store["uri"])
        train(compose_train(["data=file", f"data.path={REAL_PROFET}", f"anchor={ANCHOR}", "regressor=ratio"]))
        # Register this job directly: its mean_wape is not comparable with the embedded job's.
        job = mlflow.search_runs(
            [store["experiment_id"]],
            filter_string=f"params.`data.path` = '{REAL_PROFET}' AND tags.`profcast.job_model` = 'profcast'",
        ).iloc[0]
        return register_job(job.run_id, compose_train().registry.alias)


@pytest.fixture
def run_predict(run_cli):
    """run_predict(*args, uri): ``python -m profcast.predict ARGS`` in its own process against the store ``uri``."""
    return lambda *args, uri: run_cli(["-m", "profcast.predict", *args], env_uri=uri, timeout=300)


def ranked_instances(stdout: str) -> list[str]:
    """Instance names in the printed table, in rank order."""
    return [match.group(1) for match in re.finditer(r"^\s+\d+\s+(\S+)\s", stdout, flags=re.MULTILINE)]


def embedded_export():
    return embedded_tree_path() / "exp1" / ANCHOR / f"{EMBEDDED_RUN}.csv"


def test_cli_ranks_a_tfstats_export_and_plots(run_predict, store, tmp_path):
    plot = tmp_path / "ranking.png"
    result = run_predict(
        "--profile",
        str(embedded_export()),
        "--anchor",
        ANCHOR,
        "--model",
        store["embedded_model"],
        "--dataset-size",
        "50000",
        "--plot",
        str(plot),
        uri=store["uri"],
    )
    assert result.returncode == 0, result.stderr
    assert sorted(ranked_instances(result.stdout)) == sorted(EMBEDDED_TARGETS + [ANCHOR])
    assert "tf_stats export" in result.stdout and "50,000 samples / batch 64 = 782 steps" in result.stdout
    assert "(anchor, measured)" in result.stdout and "$0.526" in result.stdout  # g4dn.xlarge's price per hour
    assert plot.stat().st_size > 1000
    latencies = [float(value) for value in re.findall(r"(\d+\.\d+) ms", result.stdout)]
    assert latencies == sorted(latencies)


def test_cli_reads_a_json_list_of_op_objects(tracking, tmp_path, capsys):
    ops = {op: us for op, us in read_tfstats_export(embedded_export()).items() if op.startswith(("Device_", "Host_"))}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps([{op: value} for op, value in ops.items()]))
    assert (
        exit_code(
            main,
            ["--profile", str(path), "--anchor", ANCHOR, "--model", tracking["embedded_model"], "--batchsize", "64"],
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "JSON profile" in out and sorted(ranked_instances(out)) == sorted(EMBEDDED_TARGETS)
    assert "speed-up is n/a" in out and "782 steps" in out


def test_cli_ranking_matches_real_latencies_at_both_ends(run_predict, profet_champion, store, tmp_path):
    table = pd.read_csv(REAL_PROFET)
    workload = (table[list(PROFET_WORKLOAD)] == pd.Series(PROFET_WORKLOAD)).all(axis=1)
    row = table[workload & (table["instance_name"] == ANCHOR)]
    assert len(row) == 1
    path = tmp_path / "one_row.csv"
    row.to_csv(path, index=False)
    result = run_predict("--profile", str(path), "--anchor", ANCHOR, uri=store["uri"])  # no --model: the champion
    assert result.returncode == 0, result.stderr
    assert f"models:/profcast-{ANCHOR}@champion" in result.stdout
    ranking = ranked_instances(result.stdout)
    true_order = list(
        table[
            (
                table[["dataset", "model", "batchsize"]]
                == pd.Series(PROFET_WORKLOAD)[["dataset", "model", "batchsize"]]
            ).all(axis=1)
        ]
        .groupby("instance_name")["batch_latency"]
        .median()
        .sort_values()
        .index
    )
    assert sorted(ranking) == sorted(true_order)
    assert ranking[0] == true_order[0] and ranking[-1] == true_order[-1]


def test_cli_without_a_champion_says_to_run_the_sweep(run_predict, store):
    result = run_predict("--profile", str(embedded_export()), "--anchor", "p2.xlarge", uri=store["uri"])
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("profcast: error: no model registered as profcast-p2.xlarge@champion")
    assert "profcast train -m anchor=p2.xlarge" in result.stderr


def bad_profiles(tmp_path):
    """(name, file, extra args, expected words) for each kind of bad input."""
    negative = tmp_path / "negative.json"
    negative.write_text(json.dumps([{"Device_Conv2D": 100.0, "Host_IDLE": -5}]))
    unknown_only = tmp_path / "unknown.json"
    unknown_only.write_text(json.dumps([{"Device_Warp_Drive": 100.0}]))
    broken_export = tmp_path / "broken.csv"
    rows = list(csv.reader(embedded_export().read_text().splitlines()))
    rows[1][5] = "fast"  # Total time (us)
    with open(broken_export, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    other_instance = tmp_path / "other.csv"
    pd.DataFrame([{"instance_name": "p2.xlarge", "Device_Conv2D": 1.0}]).to_csv(other_instance, index=False)
    not_json = tmp_path / "profile.json"
    not_json.write_text("{op: 1")
    yield "missing", tmp_path / "nope.csv", [], "nope.csv: no such file"
    yield "header only", tmp_path / "profile.txt", [], "profile.txt: holds no rows"
    yield "negative", negative, [], "column 'Host_IDLE' row 0 value -5 is negative"
    yield "no known op", unknown_only, [], "no known op column"
    yield "broken export", broken_export, [], "Total time (us) is 'fast'"
    yield (
        "other instance",
        other_instance,
        [],
        "no row was profiled on the anchor g3s.xlarge; instance_name values: p2.xlarge",
    )
    yield "not json", not_json, [], "not valid JSON"
    yield (
        "wrong anchor model",
        embedded_export(),
        ["--anchor", "p2.xlarge"],
        "predicts from profiles taken on g3s.xlarge, not p2.xlarge",
    )
    yield "bad dataset size", embedded_export(), ["--dataset-size", "0"], "--dataset-size 0"


def test_cli_errors_are_one_line_with_exit_code_2(tracking, tmp_path, capsys):
    (tmp_path / "profile.txt").write_text("Device_Conv2D 5\n")
    for name, path, extra, words in bad_profiles(tmp_path):
        args = ["--profile", str(path), "--anchor", ANCHOR, "--model", tracking["embedded_model"], *extra]
        assert exit_code(main, args) == 2, name
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("profcast: error:") and words in lines[0], (name, captured.err)
        assert captured.out == "", name


def test_cli_takes_the_anchor_from_the_model_when_only_model_is_given(tracking, tmp_path, capsys):
    ops = {op: us for op, us in read_tfstats_export(embedded_export()).items() if op.startswith(("Device_", "Host_"))}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps([ops]))
    assert exit_code(main, ["--profile", str(path), "--model", tracking["embedded_model"], "--batchsize", "64"]) == 0
    out = capsys.readouterr().out
    assert f"on anchor {ANCHOR}" in out and sorted(ranked_instances(out)) == sorted(EMBEDDED_TARGETS)


def test_cli_without_anchor_or_model_says_what_to_pass_in_one_line(tmp_path, capsys):
    path = tmp_path / "profile.json"
    path.write_text('[{"Device_Conv2D": 10.0}]')
    assert exit_code(main, ["--profile", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "profcast: error: pass --anchor (its registered champion forecasts) or --model (the anchor is the model's)"
    )
