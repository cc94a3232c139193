"""The config schema (profcast.config_schema): every shipped option composes against a schema, a typo,
a wrong type or an unknown option is one line before anything runs, and Hydra's runtime choices
name the runs."""

from __future__ import annotations

import dataclasses
import os

import mlflow
import pytest
from omegaconf import OmegaConf

from profcast.config import CONF_DIR
from profcast.config_schema import TrainConfig
from profcast.errors import ProfcastError
from profcast.pipeline.job import prepare_job
from profcast.train import train
from tests.conftest import compose_train

GROUPS = sorted(folder.name for folder in CONF_DIR.iterdir() if folder.is_dir() and folder.name != "experiment")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))]


def test_every_option_group_is_a_field_of_the_schema():
    """A new folder in conf/ needs its field on TrainConfig (else Hydra refuses the group)."""
    schema_fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert {"data", "features", "split", "regressor", "pairing", "whatif"} <= set(GROUPS) <= schema_fields


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{group}={option}" for group, option in OPTIONS])
def test_every_shipped_option_composes_against_a_schema(group, option):
    cfg = compose_train([f"{group}={option}"])
    node = cfg[group]
    schema = OmegaConf.get_type(node)
    # a dataclass from profcast.config_schema, not an open dict: its keys and their types are checked
    assert dataclasses.is_dataclass(schema) and schema.__module__ == "profcast.config_schema", (group, option, schema)
    assert set(node.keys()) == {field.name for field in dataclasses.fields(schema)}
    assert cfg.hydra.runtime.choices[group] == option
    assert "name" not in node  # options are named by Hydra's runtime choices


@pytest.mark.parametrize("experiment", sorted(path.stem for path in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes(experiment):
    cfg = compose_train([f"experiment={experiment}"])
    assert OmegaConf.get_type(cfg.regressor).__module__ == "profcast.config_schema"


def test_the_top_level_keys_are_typed():
    cfg = compose_train()
    assert (
        OmegaConf.get_type(cfg).__name__ == "TrainConfig"
        and OmegaConf.get_type(cfg.registry).__name__ == "RegistryConfig"
    )
    assert cfg.whatif.max_iter == 150 and cfg.registry.alias == "champion"  # stated once, in the YAML


IN_PROCESS_CASES = {
    "unknown_key": (["regresor=rf"], "Key 'regresor' not in 'TrainConfig'"),
    "key_typo_in_option": (
        ["regressor=transfer", "regressor.max_iterr=3"],
        "Key 'max_iterr' not in 'TransferRegressorConfig'",
    ),
    "wrong_type": (
        ["whatif.max_iter=abc"],
        "whatif.max_iter=abc. Value 'abc' of type 'str' could not be converted to Integer",
    ),
    "wrong_bool": (["log_plots=maybe"], "Value 'maybe' is not a valid bool"),
    "wrong_type_in_registry": (["registry.lower_is_better=often"], "Value 'often' is not a valid bool"),
    "list_for_a_path": (["data=file", "data.path=[a,b]"], "Cannot convert 'list' to string"),
    **{
        f"unknown_{group}": ([f"{group}=nope"], f"Could not find '{group}/nope'. Available options in '{group}': ")
        for group in GROUPS
    },
}


@pytest.mark.parametrize("case", IN_PROCESS_CASES)
def test_a_config_error_is_one_line_naming_the_key(case):
    overrides, words = IN_PROCESS_CASES[case]
    with pytest.raises(ProfcastError) as raised:
        compose_train(overrides)
    message = str(raised.value)
    assert words in message and "\n" not in message and message.startswith("config: ")
    assert "base_" not in message  # the schemas are not options to offer


def test_unknown_option_lists_only_real_options():
    with pytest.raises(ProfcastError) as raised:
        compose_train(["regressor=xgb"])
    listed = str(raised.value).split("Available options in 'regressor': ")[1].split(", ")
    assert listed == sorted(path.stem for path in (CONF_DIR / "regressor").glob("*.yaml"))


def test_a_typo_in_an_option_file_is_refused(tmp_path):
    """A user's option YAML that names a schema gets its keys checked too."""
    (tmp_path / "regressor").mkdir()
    (tmp_path / "regressor" / "slow_transfer.yaml").write_text(
        "defaults:\n  - base_transfer\n_target_: profcast.regressors.transfer.TransferRegressor\nmax_iter: 10\nlerning_rate: 0.1\n"
    )
    with pytest.raises(ProfcastError, match="Key 'lerning_rate' not in 'TransferRegressorConfig'"):
        compose_train([f"hydra.searchpath=[file://{tmp_path}]", "regressor=slow_transfer"])


def test_a_required_key_left_out_of_an_option_file_is_one_line(tmp_path, profile_csv):
    (tmp_path / "regressor").mkdir()
    (tmp_path / "regressor" / "short.yaml").write_text(
        "defaults:\n  - base_profet\n_target_: profcast.regressors.profet.ProfetLatencyRegressor\nn_estimators: 10\nn_jobs: null\n"
    )
    cfg = compose_train(
        [
            f"hydra.searchpath=[file://{tmp_path}]",
            "regressor=short",
            "data=file",
            f"data.path={profile_csv}",
            "anchor=slow.gpu",
        ]
    )
    with pytest.raises(ProfcastError, match=r"needs a value for regressor\.random_state"):
        prepare_job(cfg)


# ---- the command line: one line, exit 2, and nothing created -------------------------------------
CLI_CASES = {
    "unknown_key": ["regresor=rf"],
    "wrong_type": ["whatif.max_iter=abc"],
    "key_typo": ["regressor.max_iterr=3", "regressor=transfer"],
    "unknown_option": ["pairing=zip"],
    "bad_value_built": ["pairing.mode=zip"],  # passes the schema (a string); the class refuses it before any data loads
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_command_refuses_a_bad_config_in_one_line_before_any_run(run_cli, case, tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    result = run_cli(
        ["-m", "profcast.train", *CLI_CASES[case]],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("profcast: error: "), result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_hydra_full_error_still_gives_hydras_own_report(run_cli, tmp_path):
    env = {**{key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}, "HYDRA_FULL_ERROR": "1"}
    result = run_cli(
        ["-m", "profcast.train", "regresor=rf"],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "regresor" in result.stderr


# ---- runtime choices name the runs -----------------------------------------------------------------
def test_runtime_choices_name_the_options(profile_csv):
    job = prepare_job(
        compose_train(
            [
                "data=file",
                f"data.path={profile_csv}",
                "anchor=slow.gpu",
                "target=fast.gpu",
                "regressor=ratio",
                "features=top50",
                "features.k=3",
                "split=model_dataset",
                "pairing=cross",
            ]
        )
    )
    assert job.names == {
        "data": "file",
        "features": "top3",
        "split": "model_dataset",
        "regressor": "ratio",
        "pairing": "cross",
        "whatif": "sizes",
        "vocabulary": "native",
    }
    assert job.pairs["fast.gpu"].mode == "cross"


def test_a_cli_run_is_named_by_its_choices(run_cli, profile_csv, tmp_path, tracking_uri):
    env = {
        **{key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"},
        "MLFLOW_TRACKING_URI": tracking_uri,
    }
    result = run_cli(
        [
            "-m",
            "profcast.train",
            "data=file",
            f"data.path={profile_csv}",
            "anchor=slow.gpu",
            "target=fast.gpu",
            "regressor=ratio",
            "features=top",
            "features.k=3",
            "whatif=none",
            "log_model=false",
            "log_plots=false",
        ],
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=["profcast"])
    job = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert job["tags.mlflow.runName"] == "slow.gpu ratio top3 model"
    assert (job["params.regressor"], job["params.features"], job["params.split"], job["params.pairing"]) == (
        "ratio",
        "top3",
        "model",
        "auto",
    )
    target = runs[runs["tags.mlflow.parentRunId"] == job.run_id].iloc[0]
    assert target["tags.mlflow.runName"] == "slow.gpu -> fast.gpu (ratio)" and target["params.pairing"] == "same_exp"
    assert not any(column.startswith("params.hydra") for column in runs.columns)


def test_whatif_none_fits_no_whatif(profile_csv, tracking_uri):
    base = [
        "data=file",
        f"data.path={profile_csv}",
        "anchor=slow.gpu",
        "target=fast.gpu",
        "regressor=ratio",
        "log_model=false",
        "log_plots=false",
    ]
    with_sizes = train(compose_train(base))["fast.gpu"]
    without = train(compose_train([*base, "whatif=none"]))["fast.gpu"]
    assert "whatif_batch_latency_mape" in with_sizes and "whatif_batch_latency_mape" not in without
    assert without["wape"] == pytest.approx(with_sizes["wape"])  # the what-if never changes the forecast itself
