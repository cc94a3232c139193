"""Columns are chosen from training rows only; splits hold out whole groups."""

import numpy as np
import pytest

from profcast.errors import ProfcastError
from profcast.pipeline.features import AllColumns, NonzeroColumns, TopColumns
from profcast.pipeline.pairing import pair_runs
from profcast.pipeline.splits import GroupSplit
from profcast.schema import op_part


@pytest.fixture
def paired(profile_table):
    return pair_runs(profile_table, "slow.gpu", "fast.gpu")


def test_nonzero_selection_ignores_held_out_rows(paired):
    # BatchNorm runs only in resnet: with resnet held out it must not be selected
    train = (paired.keys.model != "resnet").to_numpy()
    anchor, target = op_part(paired.anchor_profile), op_part(paired.target_profile)
    chosen = NonzeroColumns().select(anchor[train], target[train])
    assert "Device_FusedBatchNormV3" not in chosen
    assert "Device_Unused" not in chosen
    assert set(chosen) == {"Device_Conv2D", "Device_Relu", "Host_IDLE"}
    assert "Device_FusedBatchNormV3" in NonzeroColumns().select(anchor, target)
    assert AllColumns().select(anchor[train], target[train]) == list(anchor.columns)


def test_top_k_orders_by_training_sum(paired):
    anchor, target = op_part(paired.anchor_profile), op_part(paired.target_profile)
    assert TopColumns(2).select(anchor, target) == ["Host_IDLE", "Device_Conv2D"]
    assert len(TopColumns(90).select(anchor, target)) == 4  # only non-zero columns qualify
    for bad_k in (None, 0, -3, "abc", 2.5, True):
        with pytest.raises(ProfcastError, match="features.k must be a positive whole number"):
            TopColumns(bad_k)


@pytest.mark.parametrize("group_columns", [["model"], ["model", "dataset"], ["model", "dataset", "batchsize"]])
def test_groups_never_straddle_train_and_test(paired, group_columns):
    folds = GroupSplit(group_columns).folds(paired.keys)
    n_groups = len(paired.keys[group_columns].drop_duplicates())
    assert len(folds) == n_groups
    tested = np.zeros(len(paired.keys), int)
    for train, test in folds:
        train_groups = set(map(tuple, paired.keys.iloc[train][group_columns].to_numpy()))
        test_groups = set(map(tuple, paired.keys.iloc[test][group_columns].to_numpy()))
        assert len(test_groups) == 1 and not train_groups & test_groups
        tested[test] += 1
    assert (tested == 1).all()  # every row held out exactly once


def test_fixed_holdout_models(paired):
    for holdout in (["vgg"], "vgg"):  # one name is one model, never its letters
        ((train, test),) = GroupSplit(["model"], holdout=holdout).folds(paired.keys)
        assert set(paired.keys.iloc[test].model) == {"vgg"}
        assert "vgg" not in set(paired.keys.iloc[train].model)
    with pytest.raises(ProfcastError, match="unknown model\\(s\\) vggsmall"):
        GroupSplit(["model"], holdout=["vggsmall"]).folds(paired.keys)
    with pytest.raises(ProfcastError, match="split.group_keys must name workload keys"):
        GroupSplit(["random"])
