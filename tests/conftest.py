"""Shared fixtures: a small synthetic profile table, Hydra composition, an isolated MLflow store, and the tiers.

Which tier a test runs in follows from the fixtures it uses, directly or through other fixtures
(docs/testing.md): ``pytest_collection_modifyitems`` (tests/tiers.py) marks it ``integration`` or ``e2e``, and the
default run (``addopts`` in pyproject.toml) leaves both out.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.worker_cores import share_the_cores_between_workers

share_the_cores_between_workers()  # a parallel run's workers split the cores, before numpy sizes its thread pool

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

# The tiers: markers from the fixtures a test uses, and the default tier kept in-process (tests/tiers.py).
from tests.tiers import pytest_collection_modifyitems, pytest_runtest_call, pytest_runtest_setup  # noqa: F401, E402

REPO = Path(__file__).resolve().parents[1]
REAL_PROFET = REPO.parent / "shared" / "data" / "profet" / "profiles.csv.gz"

# Relative speed of each instance per op (bigger = slower); BatchNorm ops only in 'resnet'.
INSTANCE_SLOWDOWN = {
    "slow.gpu": {"Conv": 3.0, "Relu": 2.0, "BatchNorm": 2.5, "IDLE": 1.5},
    "mid.gpu": {"Conv": 1.5, "Relu": 1.2, "BatchNorm": 1.3, "IDLE": 1.2},
    "fast.gpu": {"Conv": 1.0, "Relu": 1.0, "BatchNorm": 1.0, "IDLE": 1.0},
}
MODEL_SIZE = {"lenet": 1.0, "vgg": 6.0, "resnet": 4.0, "alexnet": 3.0}


def synthetic_profiles(
    instances=("slow.gpu", "mid.gpu", "fast.gpu"),
    models=("lenet", "vgg", "resnet", "alexnet"),
    datasets=("mnist", "cifar10"),
    batchsizes=(32, 128),
    repetitions=("exp1", "exp2"),
    seed: int = 0,
) -> pd.DataFrame:
    """A wide profile table with known structure: op time ~ model size x batch x instance slowdown."""
    rng = np.random.default_rng(seed)
    rows = []
    for instance in instances:
        for exp in repetitions:
            for model in models:
                for dataset_number, dataset in enumerate(datasets):
                    for batchsize in batchsizes:
                        work = MODEL_SIZE[model] * batchsize * (1 + dataset_number)
                        slowdown = INSTANCE_SLOWDOWN[instance]
                        noise = lambda: rng.normal(1.0, 0.01)  # noqa: E731
                        rows.append(
                            {
                                "exp_name": exp,
                                "instance_name": instance,
                                "dataset": dataset,
                                "model": model,
                                "optimizer": "sgd",
                                "batchsize": batchsize,
                                "Device_Conv2D": 10 * work * slowdown["Conv"] * noise(),
                                "Device_Relu": 2 * work * slowdown["Relu"] * noise(),
                                "Device_FusedBatchNormV3": (3 * work * slowdown["BatchNorm"] * noise())
                                if model == "resnet"
                                else 0.0,
                                "Host_IDLE": 50 * work * slowdown["IDLE"] * rng.normal(1.0, 0.05),
                                "Device_Unused": 0.0,
                                "batch_latency": 1e-4 * work * slowdown["Conv"] * noise(),
                            }
                        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module", autouse=True)
def tracking_uri_of_the_environment():
    """Each module starts and ends with MLflow reading its store from the environment: a tracking URI a
    module set in this process (mlflow.set_tracking_uri, or a job's configure_tracking) would otherwise win
    over the next module's MLFLOW_TRACKING_URI, and the tests would pass only in one order."""
    mlflow_reset_tracking_uri()
    yield
    mlflow_reset_tracking_uri()


@pytest.fixture
def profile_table() -> pd.DataFrame:
    return synthetic_profiles()


@pytest.fixture
def profile_csv(tmp_path, profile_table) -> Path:
    path = tmp_path / "profiles.csv"
    profile_table.sample(frac=1.0, random_state=1).to_csv(path, index=False)  # arbitrary row order
    return path


@pytest.fixture(scope="session")
def empty_tracking_database(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made once (creating them takes seconds)."""
    import mlflow

    database = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()
    return database


def fresh_tracking_store(folder: Path, empty_database: Path) -> str:
    """Copy the empty MLflow database into `folder`/mlruns and return its tracking URI."""
    (folder / "mlruns").mkdir()
    shutil.copy(empty_database, folder / "mlruns" / "mlflow.db")
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


def train_into_fresh_store(folder: Path, empty_database: Path, overrides) -> dict:
    """Train one job (``python -m profcast.train OVERRIDES``) into a fresh store in ``folder``.

    Returns the store's ``uri``, the ``experiment_id``, the job's ``model_uri`` (runs:/.../profcast)
    and the per-target ``metrics``.
    """
    import mlflow

    from profcast.tracking.store import configure_tracking
    from profcast.train import train

    uri = fresh_tracking_store(folder, empty_database)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
        cfg = compose_train(overrides)
        metrics = train(cfg)
        experiment_id = configure_tracking(cfg.tracking_uri, cfg.mlflow_experiment)
        job = mlflow.search_runs([experiment_id], filter_string="tags.`profcast.job_model` = 'profcast'").iloc[0]
    return {"uri": uri, "experiment_id": experiment_id, "model_uri": f"runs:/{job.run_id}/profcast", "metrics": metrics}


def store_and_profiles(tmp_path_factory, empty_database: Path, name: str) -> tuple[Path, str, Path]:
    """A folder of a module's own with a fresh MLflow store and the synthetic profile table as CSV:
    (folder, tracking URI, table path)."""
    folder = tmp_path_factory.mktemp(name)
    uri = fresh_tracking_store(folder, empty_database)
    table = folder / "profiles.csv"
    synthetic_profiles().to_csv(table, index=False)
    return folder, uri, table


def compose_train(overrides=()):
    """The train config exactly as the CLI would build it from these overrides (with its ``hydra``
    node: runtime choices name the runs); a config error raises a one-line ProfcastError."""
    from profcast.config import compose_train_config

    return compose_train_config(overrides)


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch, empty_tracking_database) -> str:
    """An MLflow store of the test's own, so tests never touch the repo's mlruns/."""
    uri = fresh_tracking_store(tmp_path, empty_tracking_database)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
    return uri


@pytest.fixture
def compose_config():
    """compose_config(overrides) -> the train config exactly as the CLI would build it."""
    return compose_train


@pytest.fixture(scope="session")
def real_profet() -> Path:
    """The real PROFET table (../shared); a test using it trains on real data, so it is in the e2e tier."""
    if not REAL_PROFET.exists():
        pytest.skip(f"real PROFET data not found at {REAL_PROFET}")
    return REAL_PROFET


@pytest.fixture(scope="session")
def run_cli():
    """run_cli(args, env_uri=None, timeout=90, ...) -> CompletedProcess: a command in its own process."""
    from tests.commands import run_command

    return run_command


@pytest.fixture(scope="session")
def start_cli():
    """start_cli(args, env_uri, log_path) -> Popen: a command left running in its own process group."""
    from tests.commands import start_command

    return start_command


@pytest.fixture(scope="session")
def model_server():
    """ModelServer(model_uri, log_path, ...): `mlflow models serve` on a free port, as a context manager."""
    from profcast.hosting.model_server import ModelServer

    return ModelServer


@pytest.fixture(scope="session")
def postgres_tracking_server_folder():
    """A PostgreSQL-backed `mlflow server` (basic-auth, served artifacts), started once per run; yields its folder.

    While it runs, the tests (and the sweeps they start) are logged in as its admin.
    """
    from profcast.hosting import tracking_server
    from profcast.hosting.model_server import free_loopback_port
    from tests.fixtures_scale import logged_in_as_admin, require_scale, server_folder

    require_scale()
    folder = server_folder()
    try:
        tracking_server.start(folder, "127.0.0.1", free_loopback_port())
        with logged_in_as_admin(folder):
            yield folder
    finally:
        tracking_server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_tracking_server(postgres_tracking_server_folder):
    """The http tracking URI of the shared test server (logged in as its admin)."""
    from profcast.hosting import tracking_server

    return tracking_server.read_state(postgres_tracking_server_folder).uri


@pytest.fixture
def ray_temp_dir():
    """Ray's session folder for one sweep (short: Ray's socket paths have a length limit), removed after."""
    import tempfile

    from tests.fixtures_scale import require_scale

    require_scale()
    folder = Path(tempfile.mkdtemp(prefix="ray-pc-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# --- The trained job ---------------------------------------------------------------------------------
# The one small job every test that needs a trained model shares: the embedded data, a ratio regressor
# (fits in a second), three targets, no plots. Trained once per run, in process.
TRAINED_JOB_ANCHOR = "g3s.xlarge"
TRAINED_JOB_TARGETS = ("p3.2xlarge", "g4dn.xlarge", "p2.xlarge")
TRAINED_JOB = (
    f"anchor={TRAINED_JOB_ANCHOR}",
    "regressor=ratio",
    f"target=[{','.join(TRAINED_JOB_TARGETS)}]",
    "log_plots=false",
)


@pytest.fixture(scope="session")
def trained_job(tmp_path_factory, empty_tracking_database) -> dict:
    """The shared job (TRAINED_JOB), trained once: its store's ``uri``, ``experiment_id``, ``model_uri``,
    ``metrics`` and ``folder``. Read it, never write to its store: ``store_with_trained_job`` gives a store of
    one's own."""
    folder = tmp_path_factory.mktemp("trained_job")
    trained = train_into_fresh_store(folder, empty_tracking_database, TRAINED_JOB)
    mlflow_reset_tracking_uri()
    return {**trained, "folder": folder}


def store_with_trained_job(trained_job: dict, folder: Path) -> dict:
    """A store of its own in ``folder`` holding the shared job: its database copied, so what a test registers or
    logs there stays there (the job's artifacts are read where training wrote them). The trained_job dict, with
    this store's ``uri`` and ``folder``."""
    (folder / "mlruns").mkdir(parents=True)
    shutil.copy(trained_job["folder"] / "mlruns" / "mlflow.db", folder / "mlruns" / "mlflow.db")
    return {**trained_job, "uri": f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}", "folder": folder}


def mlflow_reset_tracking_uri() -> None:
    """Forget a tracking URI set in this process, so the next test's environment (MLFLOW_TRACKING_URI) decides."""
    import mlflow

    mlflow.set_tracking_uri(None)
