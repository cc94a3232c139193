"""Columns are chosen from training rows only; splits hold out whole groups."""

import numpy as np
import pytest

from src.errors import ProfcastError
from src.features import select_columns
from src.pairing import pair_runs
from src.splits import GROUP_KEYS, validation_folds
from src.regressors import op_part


@pytest.fixture
def paired(profile_table):
    return pair_runs(profile_table, "slow.gpu", "fast.gpu")


def test_nonzero_selection_ignores_held_out_rows(paired):
    # BatchNorm runs only in resnet: with resnet held out it must not be selected
    train = (paired.keys.model != "resnet").to_numpy()
    anchor, target = op_part(paired.anchor_profile), op_part(paired.target_profile)
    chosen = select_columns(anchor[train], target[train], "nonzero")
    assert "Device_FusedBatchNormV3" not in chosen
    assert "Device_Unused" not in chosen
    assert set(chosen) == {"Device_Conv2D", "Device_Relu", "Host_IDLE"}
    assert "Device_FusedBatchNormV3" in select_columns(anchor, target, "nonzero")
    assert select_columns(anchor[train], target[train], "all") == list(anchor.columns)


def test_top_k_orders_by_training_sum(paired):
    anchor, target = op_part(paired.anchor_profile), op_part(paired.target_profile)
    assert select_columns(anchor, target, "top", 2) == ["Host_IDLE", "Device_Conv2D"]
    assert len(select_columns(anchor, target, "top", 90)) == 4  # only non-zero columns qualify
    with pytest.raises(ProfcastError, match="needs a positive k"):
        select_columns(anchor, target, "top", None)
    with pytest.raises(ProfcastError, match="unknown feature selection 'best'"):
        select_columns(anchor, target, "best")


@pytest.mark.parametrize("scheme", list(GROUP_KEYS))
def test_groups_never_straddle_train_and_test(paired, scheme):
    folds = validation_folds(paired.keys, scheme)
    group_columns = GROUP_KEYS[scheme]
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
    (train, test), = validation_folds(paired.keys, "model", holdout=["vgg"])
    assert set(paired.keys.iloc[test].model) == {"vgg"}
    assert "vgg" not in set(paired.keys.iloc[train].model)
    with pytest.raises(ProfcastError, match="unknown model\\(s\\) vggsmall"):
        validation_folds(paired.keys, "model", holdout=["vggsmall"])
    with pytest.raises(ProfcastError, match="unknown split 'random'"):
        validation_folds(paired.keys, "random")
