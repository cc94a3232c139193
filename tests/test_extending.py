"""docs/extending.md's worked examples: a regressor, a data source and a feature selection, each
one YAML plus one class, written out from the page's own code blocks and trained end to end."""

from __future__ import annotations

import re
import sys

import pytest

from profcast.config import instantiate_option
from profcast.train import train
from tests.conftest import REPO, compose_train, synthetic_profiles

PAGE = REPO / "docs" / "extending.md"


def example_files() -> dict[str, str]:
    """The page's code blocks that start with '# file: <path>', keyed by that path."""
    blocks = re.findall(r"```(?:python|yaml)\n# file: (\S+)\n(.*?)```", PAGE.read_text(), flags=re.S)
    return {path: body for path, body in blocks}


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """The page's files written under tmp_path; its Python importable, its YAML on Hydra's search path."""
    files = example_files()
    for path, body in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    (tmp_path / "my_profcast_ext" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, files
    for name in [module for module in sys.modules if module.startswith("my_profcast_ext")]:
        del sys.modules[name]


def test_page_holds_one_yaml_and_one_class_per_extension():
    files = example_files()
    assert sorted(path for path in files if path.endswith(".yaml")) == [
        "conf/data/glob_tables.yaml",
        "conf/features/device.yaml",
        "conf/regressor/mean_ratio.yaml",
    ]
    assert sum(path.endswith(".py") for path in files) == 3


def test_the_three_extensions_train_a_job(extension, tmp_path, tracking_uri):
    folder, _ = extension
    tables = folder / "profiles"
    tables.mkdir()
    profiles = synthetic_profiles()
    for instance, rows in profiles.groupby("instance_name"):  # one table per instance, stacked by the source
        rows.to_csv(tables / f"{instance}.csv", index=False)
    cfg = compose_train(
        [
            f"hydra.searchpath=[file://{folder / 'conf'}]",
            "data=glob_tables",
            f"data.pattern={tables}/*.csv",
            "features=device",
            "regressor=mean_ratio",
            "anchor=slow.gpu",
            "target=fast.gpu",
        ]
    )
    selected = instantiate_option("features", cfg.features).select(
        profiles.filter(like="Device_"), profiles.filter(like="Device_")
    )
    assert selected == ["Device_Conv2D", "Device_Relu", "Device_FusedBatchNormV3"]
    metrics = train(cfg)["fast.gpu"]
    # mean ratios on data whose ops scale by a fixed per-op factor are close to exact
    assert metrics["wape"] < 10
    assert metrics["n_test_rows"] == len(profiles.query("instance_name == 'fast.gpu'"))
