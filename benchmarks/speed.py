"""Speed benchmark: where a job's wall time goes, against a bare scikit-learn loop, and serving latency.

    python -m benchmarks.speed [--only sweep,real,serving] [--real-regressors transfer,rf] [--store URI] [--out PATH]

- sweep: the README's ``profcast train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge``, split
  into start (interpreter, imports), load, pair, fit, score and log (benchmarks.phase_timer), next
  to the same fits as a bare loop (same estimators, same folds, one process, no MLflow);
- real: one job on the PROFET table beside the repo (p2.xlarge, 3 targets) per regressor, the same way;
- serving: p50/p99 of 1, 100 and 10,000-row requests to the sweep's champion over HTTP
  (``mlflow models serve``) in each answer shape (param ``output``), in process, and to a trivial
  pyfunc model behind the same server (MLflow's floor), with and without the champion's signature.
  ``--store URI`` serves the champion already in that store instead of training the sweep first.

Every run goes to a temporary MLflow store. The table is printed and written to
benchmarks/results/speed.md. Both sides of each ratio are measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "speed.md"
ANCHOR = "g3s.xlarge"
SWEEP_ARGS = ["-m", "regressor=rf,knn,dt,lr", f"anchor={ANCHOR}"]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "profet" / "profiles.csv.gz"
REAL_ANCHOR = "p2.xlarge"
PHASES = ("start", "load", "pair", "fit", "score", "log")
REQUEST_SIZES = {1: 200, 100: 50, 10_000: 5}  # rows per request: timed calls


def run_timed(command: list[str], env: dict, cwd: Path) -> float:
    """Wall seconds of a child process; its stderr tail on failure."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return seconds


def pipeline_job(train_args: list[str], env: dict, work: Path) -> dict:
    """Wall time of ``profcast train ARGS`` and its phases."""
    phases_file = work / f"phases-{time.monotonic_ns()}.json"
    hydra_dirs = [f"hydra.sweep.dir={work / 'multirun'}", f"hydra.run.dir={work / 'outputs'}"]
    wall = run_timed(
        [sys.executable, "-m", "benchmarks.phase_timer", str(phases_file), "--", *train_args, *hydra_dirs],
        env,
        REPO_ROOT,
    )
    phases = json.loads(phases_file.read_text())
    train = phases.get("train", 0.0)
    return {
        "wall": wall,
        "train": train,
        "start": wall - train,
        **{phase: phases.get(phase, 0.0) for phase in PHASES[1:]},
    }


def bare_job(train_args: list[str], env: dict) -> float:
    """Wall time of the same fits as a plain script (see ``bare_loop``), in a fresh process."""
    # One OpenMP thread: with two, a boosted fit took 8x longer on a shared 2-core machine (threads
    # spin while they wait), which would flatter the pipeline. Forests keep their own n_jobs threads.
    return run_timed(
        [sys.executable, "-m", "benchmarks.speed", "--bare", *train_args], {**env, "OMP_NUM_THREADS": "1"}, REPO_ROOT
    )


def bare_loop(train_args: list[str]) -> None:
    """Load, pair, and for every target fit/predict each fold and refit on every row: nothing else.

    The estimators and folds are the ones ``profcast.train`` builds from the same arguments; fits run
    one after another with the estimators' own thread settings, as a plain scikit-learn script would.
    """
    from sklearn.base import clone

    from profcast.config import compose_train_config
    from profcast.pipeline.job import prepare_job

    sweep = [arg.split("=", 1) for arg in train_args if "," in arg and "=" in arg]
    fixed = [arg for arg in train_args if arg != "-m" and "," not in arg and not arg.startswith("hydra")]
    variants = (
        [[f"{key}={value}" for key, value in [(sweep[0][0], choice)]] for choice in sweep[0][1].split(",")]
        if sweep
        else [[]]
    )
    for variant in variants:
        job = prepare_job(compose_train_config([*fixed, *variant]))
        for paired in job.pairs.values():
            anchor, target = paired.anchor_profile, paired.target_profile
            for train_rows, test_rows in job.split.folds(paired.keys):
                model = clone(job.regressor).fit(anchor.iloc[train_rows], target.iloc[train_rows])
                model.predict(anchor.iloc[test_rows])
            clone(job.regressor).fit(anchor, target)


def job_rows(
    label: str, train_args: list[str], env: dict, work: Path, bare: float | None = None
) -> tuple[list[str], float]:
    """Table rows for one job or sweep: pipeline phases, the bare loop (timed here unless given), and their ratio.

    Phases are timed in this process's jobs: a parallel launcher's jobs run in workers, so only
    ``start`` (which then includes the launcher waiting for them) and the wall time are shown.
    """
    print(f"timing {label} ...", flush=True)
    pipeline = pipeline_job(train_args, env, work)
    bare = bare_job(train_args, env) if bare is None else bare
    in_workers = pipeline["train"] == 0.0
    cells = " | ".join("-" if in_workers and phase != "start" else f"{pipeline[phase]:.1f}" for phase in PHASES)
    row = f"| {label} | {pipeline['wall']:.1f} | {cells} | {bare:.1f} | {pipeline['wall'] / bare:.2f}x |"
    print(row, flush=True)
    return [row], bare


def latency(call, calls: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of ``calls`` timed calls after 3 untimed ones."""
    for _ in range(3):
        call()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return 1000 * float(np.percentile(seconds, 50)), 1000 * float(np.percentile(seconds, 99))


def trivial_model_uri(signature=None) -> str:
    """A pyfunc model that returns its input: the cheapest thing ``mlflow models serve`` can serve.

    With ``signature`` (the champion's) MLflow also parses and checks each request against it, as it
    does for the champion: that part of the time is MLflow's, whatever the model does.
    """
    import mlflow

    from benchmarks.trivial_model import Identity
    from profcast.tracking.runs import model_requirements

    with mlflow.start_run(run_name="trivial model"):
        return mlflow.pyfunc.log_model(
            name="trivial", python_model=Identity(), pip_requirements=model_requirements(), signature=signature
        ).model_uri


def request_frames(model) -> dict:
    """Anchor profiles of the embedded data, as requests of each size (rows drawn with replacement)."""
    from profcast.datasets.embedded import load_embedded_profiles
    from profcast.jobmodel.requests import model_op_columns

    profiles = load_embedded_profiles()
    anchor = profiles[profiles["instance_name"] == ANCHOR]
    columns = [c for c in model_op_columns(model.metadata.get_input_schema()) if c in anchor.columns] + [
        "batch_latency"
    ]
    return {
        rows: anchor.sample(rows, replace=True, random_state=0)[columns].reset_index(drop=True)
        for rows in REQUEST_SIZES
    }


def serving_rows(champion: str, work: Path) -> list[str]:
    """Champion over HTTP (each answer shape), in process, and the trivial models over HTTP, per request size."""
    import mlflow

    from benchmarks.serving import http_caller
    from profcast.hosting.model_server import ModelServer
    from profcast.jobmodel.answer_format import OUTPUT_PARAM, OUTPUT_SHAPES

    print("timing serving ...", flush=True)
    model = mlflow.pyfunc.load_model(champion)
    frames = request_frames(model)
    # The server execs `uvicorn` by name: the interpreter's bin folder must be on PATH (an unactivated venv).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "PATH": path}
    shapes = (
        OUTPUT_SHAPES if model.metadata.get_params_schema() is not None else OUTPUT_SHAPES[:1]
    )  # older models: records only
    results = {rows: {} for rows in frames}
    servers = (
        ("champion", champion, shapes),
        ("trivial", trivial_model_uri(), [None]),
        ("trivial + signature", trivial_model_uri(model.metadata.signature), [None]),
    )
    for label, uri, asked in servers:
        server_log = work / f"server-{label.replace(' ', '')}.log"
        server = ModelServer(uri, server_log, env=env)
        try:
            server.__enter__()
        except RuntimeError as error:
            raise SystemExit(f"{error}:\n{server_log.read_text()[-3000:]}") from None
        try:
            for rows, frame in frames.items():
                split = json.loads(frame.to_json(orient="split", index=False))
                for shape in asked:
                    request = {"dataframe_split": split}
                    if shape not in (None, OUTPUT_SHAPES[0]):
                        request["params"] = {OUTPUT_PARAM: shape}
                    call, connection = http_caller(server.port, json.dumps(request).encode())
                    results[rows][label if shape in (None, OUTPUT_SHAPES[0]) else shape] = latency(
                        call, REQUEST_SIZES[rows]
                    )
                    connection.close()
        finally:
            server.stop()
    for rows, frame in frames.items():
        results[rows]["in process"] = latency(lambda: model.predict(frame), REQUEST_SIZES[rows])
    lines = []
    for rows, found in results.items():
        (http50, http99), (own50, own99), (floor50, floor99) = found["champion"], found["in process"], found["trivial"]
        signed50, signed99 = found["trivial + signature"]
        shaped = " | ".join(
            f"{found[shape][0]:.1f} / {found[shape][1]:.1f}" if shape in found else "-" for shape in OUTPUT_SHAPES[1:]
        )
        lines.append(
            f"| {rows:,} | {REQUEST_SIZES[rows]} | {http50:.1f} / {http99:.1f} | {shaped} | {own50:.1f} / {own99:.1f} | "
            f"{floor50:.1f} / {floor99:.1f} | {signed50:.1f} / {signed99:.1f} | {http50 / floor50:.1f}x | "
            f"{http50 / signed50:.1f}x | {http50 / own50:.1f}x |"
        )
    return lines


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--bare"]:
        bare_loop(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="sweep,real,serving", help="comma-separated parts: sweep, real, serving (default all)"
    )
    parser.add_argument(
        "--real-regressors", default="transfer,rf", help="regressors of the real-data job (default transfer,rf)"
    )
    parser.add_argument(
        "--store",
        help="serving only: an MLflow tracking URI that already holds the seed sweep's champion "
        "(skips training it; the trivial models are logged there too)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"markdown table to write (default {RESULTS.relative_to(REPO_ROOT)})"
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    unknown = parts - {"sweep", "real", "serving"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; accepted: sweep, real, serving")
    if args.store and parts != {"serving"}:
        parser.error("--store goes with --only serving (the other parts train into a fresh store)")

    work = Path(tempfile.mkdtemp(prefix="profcast-speed-"))
    (work / "mlruns").mkdir()
    os.environ["MLFLOW_TRACKING_URI"] = args.store or f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    lines = [
        f"# profcast speed ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f} at start)",
        "",
    ]
    try:
        import mlflow

        mlflow.MlflowClient().search_experiments()  # create the store's tables before any job races to
        if parts & {"sweep", "real"}:
            lines += [
                "Seconds. `start` = interpreter and imports; `fit` = fold fits, held-out predictions and refit; "
                "`log` = MLflow runs, artifacts, figures and the job model. `bare` = the same fits in a plain loop "
                "(benchmarks.speed.bare_loop), also a fresh process, OMP_NUM_THREADS=1.",
                "",
                "| job | wall | " + " | ".join(PHASES) + " | bare | wall / bare |",
                "|---|" + "---:|" * (len(PHASES) + 3),
            ]
        if "sweep" in parts:  # the default launcher (joblib: jobs in parallel workers), and one job after another
            rows, bare = job_rows("seed sweep (rf,knn,dt,lr), default launcher", SWEEP_ARGS, env, work)
            lines += rows
            lines += job_rows(
                "seed sweep, hydra/launcher=basic", [*SWEEP_ARGS, "hydra/launcher=basic"], env, work, bare
            )[0]
            # The floor of tracking alone: runs, params, metrics and CSVs, without figures, job models or what-ifs.
            lines += job_rows(
                "seed sweep, runs only (log_plots=false log_model=false whatif=none)",
                [*SWEEP_ARGS, "log_plots=false", "log_model=false", "whatif=none"],
                env,
                work,
                bare,
            )[0]
        if "real" in parts:
            if not REAL_DATA.exists():
                lines.append(f"| real data: {REAL_DATA} not found, skipped | |")
            for regressor in args.real_regressors.split(","):
                real_args = ["data=file", f"data.path={REAL_DATA}", f"anchor={REAL_ANCHOR}", f"regressor={regressor}"]
                lines += (
                    job_rows(f"real {REAL_ANCHOR} {regressor}", real_args, env, work)[0] if REAL_DATA.exists() else []
                )
        if "serving" in parts:
            if "sweep" not in parts and not args.store:  # the champion comes from a sweep
                print("training the seed sweep for its champion ...", flush=True)
                pipeline_job(SWEEP_ARGS, env, work)
            lines += [
                "",
                "Serving, milliseconds p50 / p99 per request (`calls` timed after 3 untimed). Champion HTTP answers "
                "as records (default), `columns` or `totals` (param `output`). `trivial` = a pyfunc returning its input "
                "behind the same `mlflow models serve`; `+ signature` = the same with the champion's signature "
                "(MLflow's parse and schema checks). Ratios are of the default (records) answer.",
                "",
                "| rows | calls | champion HTTP | columns | totals | champion in process | trivial HTTP | "
                "trivial + signature | champion / trivial | champion / trivial + signature | HTTP / in process |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            lines += serving_rows(f"models:/profcast-{ANCHOR}@champion", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".tmp")
    partial.write_text(table, encoding="utf-8")
    partial.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
