"""Profile a small CNN's training steps on the CPU with profcast's collector and print the profile row.

    pip install -e ".[torch]" && python examples/profile_cnn_cpu.py --out-dir profiles

The trace lands in ``profiles/exp1/<instance>/synthetic-smallcnn-sgd-<batchsize>.pt.trace.json.gz``;
``python -m profcast.convert profiles --out table.csv`` turns a folder of such traces into a training table.
"""

import argparse
import sys

from profcast.collect import profile_steps
from profcast.errors import ProfcastError


def small_cnn(torch):
    """Two conv blocks and a linear head for 32x32 RGB images (plain torch.nn)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="profiles")
    parser.add_argument("--instance", default="local.cpu")
    parser.add_argument("--batchsize", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: PLC0415  torch is optional (the torch extra): missing, the example says so in one line
    except ImportError:
        print('profcast: error: this example needs PyTorch; run: pip install -e ".[torch]"', file=sys.stderr)
        return 2
    torch.manual_seed(0)
    model = small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.randn(args.batchsize, 3, 32, 32)  # synthetic data: the profile is about the compute
    labels = torch.randint(0, 10, (args.batchsize,))

    def train_step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    try:
        row = profile_steps(
            train_step,
            steps=args.steps,
            warmup=1,
            out_dir=args.out_dir,
            instance=args.instance,
            model="smallcnn",
            dataset="synthetic",
            optimizer="sgd",
            batchsize=args.batchsize,
        )
    except ProfcastError as error:
        print(f"profcast: error: {error}", file=sys.stderr)
        return 2
    ops = {k: v for k, v in row.items() if k.startswith(("Host_", "Device_"))}
    for key in ("exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize", "batch_latency"):
        print(f"{key:>28}  {row.get(key)}")
    for column, micros in sorted(ops.items(), key=lambda item: -item[1])[:15]:
        print(f"{column:>28}  {micros:10.1f} us/step")
    print(f"{len(ops)} op columns in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
