"""Write the small real CPU traces the tests read, with torch.profiler's own per-op totals beside them.

    python tests/data/torch_traces/make_traces.py      # from the repository root; needs ".[torch]"

Two CPU "instances" (torch at 1 and 2 threads) x three tiny models x two batch sizes, 3 profiled
steps each, through ``profcast.collect.record_trace``. Traces go to ``runs/<exp>/<instance>/<run>.pt.trace.json.gz``
(the layout ``read_profile_tree`` reads); ``key_averages/<exp>/<instance>/<run>.json`` holds
``prof.key_averages()`` self CPU time per op name for the same run, the reference the reader is tested against.
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "src"))  # run as a script from anywhere: import this checkout's profcast

from profcast.collect import record_trace, trace_path  # noqa: E402

EXP = "exp1"
INSTANCE_THREADS = {"cpu1t": 1, "cpu2t": 2}
BATCH_SIZES = (8, 16)
STEPS = 3


def tiny_models() -> dict:
    """Three small plain-torch.nn image classifiers for 3x16x16 inputs, 10 classes."""
    return {
        "mlp": nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.ReLU(), nn.Linear(64, 10)),
        "convnet": nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(8 * 8 * 8, 10)),
        "bnconvnet": nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten(), nn.Linear(16, 10)),
    }


def training_step(model, batchsize: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images, labels = torch.randn(batchsize, 3, 16, 16), torch.randint(0, 10, (batchsize,))

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def main():
    torch.manual_seed(0)
    for instance, threads in INSTANCE_THREADS.items():
        torch.set_num_threads(threads)
        for name, model in tiny_models().items():
            for batchsize in BATCH_SIZES:
                path = trace_path(HERE / "runs", EXP, instance, "synthetic", name, "sgd", batchsize)
                prof = record_trace(training_step(model, batchsize), path, steps=STEPS, warmup=1, wait=1)
                reference = HERE / "key_averages" / EXP / instance / (path.name.split(".")[0] + ".json")
                reference.parent.mkdir(parents=True, exist_ok=True)
                self_cpu = {row.key: row.self_cpu_time_total for row in prof.key_averages()}
                reference.write_text(json.dumps({"steps": STEPS, "self_cpu_time_total_us": self_cpu}, indent=1, sort_keys=True) + "\n")
                print(f"{path.relative_to(HERE)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
