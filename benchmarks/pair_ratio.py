"""The GPU pair's median time ratio, the baseline a per-call forecast of a left-out model family must beat.

Issue 30: with one model family and the target GPU left out of the per-call fit (``logo+lomo`` in
``benchmarks.new_gpu``), the forecast is compared with the simplest thing a user with measurements of
both GPUs would do: scale the anchor's step by the median target/anchor step ratio of the other families.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.regressors.step_gap import RUN_KEYS


def workload_name(run) -> str:
    """``<model>-<mode>-<seq_len>-<batch>``, the label file's stem."""
    return f"{run['model']}-{run['mode']}-{run['seq_len']}-{run['batchsize']}"


def median_ratio_records(steps, target, family) -> list[dict]:
    """The GPU pair's median time ratio: each anchor's step of ``family``'s runs times the median target/anchor
    step ratio over the other families' workloads of the same mode both GPUs measured (none when there are none)."""
    on_target = steps[steps["gpu"] == target].set_index(RUN_KEYS)["e2e_us"]
    records = []
    for anchor in sorted(set(steps["gpu"]) - {target}):
        ratios = (on_target / steps[steps["gpu"] == anchor].set_index(RUN_KEYS)["e2e_us"]).dropna().reset_index()
        others = ratios[ratios["model"] != family]
        runs = steps[(steps["gpu"] == anchor) & (steps["model"] == family)].merge(
            on_target.rename("measured_us").reset_index(), on=RUN_KEYS
        )
        for row in runs.to_dict("records"):
            same_mode = others.loc[others["mode"] == row["mode"], "e2e_us"]
            if same_mode.empty:
                continue
            predicted = row["e2e_us"] * float(same_mode.median())
            records.append(
                {
                    "method": "median_ratio",
                    "protocol": "logo+lomo",
                    "anchor": anchor,
                    "target": target,
                    "model": family,
                    "workload": workload_name(row),
                    "mode": row["mode"],
                    "batchsize": int(row["batchsize"]),
                    "measured_us": float(row["measured_us"]),
                    "predicted_us": predicted,
                    "e2e_mape": abs(predicted / row["measured_us"] - 1) * 100,
                }
            )
    return records


def family_comparison(records: pd.DataFrame) -> pd.DataFrame:
    """Under ``logo+lomo``, per target GPU and mode: mean % error of ``per_call`` and of ``median_ratio`` over the
    forecasts both made (same anchor and workload), and the better one; an ``all`` row per mode."""
    both = records[records["protocol"] == "logo+lomo"]
    keys = ["anchor", "target", "workload", "mode"]
    ours = both[both["method"] == "per_call"][[*keys, "e2e_mape"]]
    baseline = both[both["method"] == "median_ratio"][[*keys, "e2e_mape"]]
    joined = ours.merge(baseline, on=keys, suffixes=("_per_call", "_median_ratio"))
    columns = {"e2e_mape_per_call": "per_call_mape", "e2e_mape_median_ratio": "median_ratio_mape"}
    per_target = joined.groupby(["mode", "target"])[list(columns)].agg(["size", "mean"])
    table = pd.DataFrame(
        {
            "records": per_target[("e2e_mape_per_call", "size")],
            **{name: per_target[(column, "mean")] for column, name in columns.items()},
        }
    ).reset_index()
    overall = joined.groupby("mode")[list(columns)].agg(["size", "mean"])
    total = pd.DataFrame(
        {
            "mode": overall.index,
            "target": "all",
            "records": overall[("e2e_mape_per_call", "size")].to_numpy(),
            **{name: overall[(column, "mean")].to_numpy() for column, name in columns.items()},
        }
    )
    table = pd.concat([table, total], ignore_index=True)
    table["better"] = np.where(table["per_call_mape"] < table["median_ratio_mape"], "per_call", "median_ratio")
    return table.round(1)
