"""Anchor and target runs pair by workload keys, whatever the row order or repetitions."""

import itertools

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.pipeline.pairing import pair_runs, resolve_targets
from tests.conftest import synthetic_profiles


def test_shuffled_rows_pair_identically(profile_table):
    ordered = pair_runs(profile_table, "slow.gpu", "fast.gpu", "same_exp")
    shuffled = pair_runs(profile_table.sample(frac=1.0, random_state=7), "slow.gpu", "fast.gpu", "same_exp")
    pd.testing.assert_frame_equal(ordered.keys, shuffled.keys)
    pd.testing.assert_frame_equal(ordered.anchor_profile, shuffled.anchor_profile)
    pd.testing.assert_frame_equal(ordered.target_profile, shuffled.target_profile)


def test_every_pair_shares_its_workload_and_repetition(profile_table):
    paired = pair_runs(profile_table.sample(frac=1.0, random_state=3), "slow.gpu", "mid.gpu", "same_exp")
    indexed = profile_table.set_index(["instance_name", "exp_name", "dataset", "model", "optimizer", "batchsize"])
    for row, keys in paired.keys.iterrows():
        workload = (keys.dataset, keys.model, keys.optimizer, keys.batchsize)
        anchor_run = indexed.loc[("slow.gpu", keys.anchor_exp, *workload)]
        target_run = indexed.loc[("mid.gpu", keys.target_exp, *workload)]
        assert paired.anchor_profile.loc[row, "Device_Conv2D"] == anchor_run["Device_Conv2D"]
        assert paired.target_profile.loc[row, "Device_Conv2D"] == target_run["Device_Conv2D"]
    assert (paired.keys.anchor_exp == paired.keys.target_exp).all()


def study_layout() -> pd.DataFrame:
    """The original study's case: the anchor ran 45 workloads in exp1 only, the target in exp1..exp3."""
    models, datasets, batchsizes = ("lenet", "vgg", "resnet"), ("mnist", "cifar10", "fmnist"), (16, 32, 64, 128, 256)
    rows = []
    for instance, exps in (("anchor.gpu", ["exp1"]), ("target.gpu", ["exp1", "exp2", "exp3"])):
        for exp, model, dataset, batchsize in itertools.product(exps, models, datasets, batchsizes):
            rows.append(
                {
                    "exp_name": exp,
                    "instance_name": instance,
                    "dataset": dataset,
                    "model": model,
                    "optimizer": "sgd",
                    "batchsize": batchsize,
                    "Device_Conv2D": float(batchsize + int(exp[-1])),
                }
            )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)


def test_cross_pairing_gives_135_pairs_from_45_anchor_runs():
    paired = pair_runs(study_layout(), "anchor.gpu", "target.gpu", "cross")
    assert len(paired) == 135
    assert paired.n_anchor_runs == 45
    assert sorted(paired.keys.target_exp.unique()) == ["exp1", "exp2", "exp3"]
    # every anchor run appears once per target repetition
    assert paired.keys.groupby(["dataset", "model", "batchsize"]).size().eq(3).all()


def test_auto_pairing_falls_back_to_cross_when_repetitions_differ(profile_table):
    assert pair_runs(study_layout(), "anchor.gpu", "target.gpu").mode == "cross"
    assert pair_runs(profile_table, "slow.gpu", "fast.gpu").mode == "same_exp"
    assert len(pair_runs(study_layout(), "anchor.gpu", "target.gpu", "same_exp")) == 45


def test_median_pairing_uses_medians_of_repetitions():
    paired = pair_runs(study_layout(), "anchor.gpu", "target.gpu", "median")
    assert len(paired) == 45
    # target values are batchsize + exp number (1..3): the median is batchsize + 2
    batchsize = paired.keys["batchsize"].to_numpy()
    assert np.allclose(paired.target_profile["Device_Conv2D"], batchsize + 2)
    assert np.allclose(paired.anchor_profile["Device_Conv2D"], batchsize + 1)


def test_unknown_instances_and_missing_matches_are_clear_errors(profile_table):
    with pytest.raises(
        ProfcastError, match="unknown anchor instance 'p9.huge'; instances in the data: fast.gpu, mid.gpu, slow.gpu"
    ):
        pair_runs(profile_table, "p9.huge", "fast.gpu")
    with pytest.raises(ProfcastError, match="unknown target instance"):
        resolve_targets(profile_table, "slow.gpu", "nope")
    with pytest.raises(ProfcastError, match="is the anchor itself"):
        resolve_targets(profile_table, "slow.gpu", "slow.gpu")
    other_workloads = profile_table.copy()
    other_workloads.loc[other_workloads.instance_name == "fast.gpu", "model"] = "unseen"
    with pytest.raises(ProfcastError, match="no anchor run on 'slow.gpu' has a target run on 'fast.gpu'"):
        pair_runs(other_workloads, "slow.gpu", "fast.gpu")
    with pytest.raises(ProfcastError, match="unknown pairing 'zip'"):
        pair_runs(profile_table, "slow.gpu", "fast.gpu", "zip")


def test_target_all_means_every_other_instance(profile_table):
    assert resolve_targets(profile_table, "mid.gpu", "all") == ["fast.gpu", "slow.gpu"]
    assert resolve_targets(synthetic_profiles(instances=("slow.gpu", "fast.gpu")), "fast.gpu", "slow.gpu") == [
        "slow.gpu"
    ]
