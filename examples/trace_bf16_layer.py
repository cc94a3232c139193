"""Record a bf16 (autocast) PyTorch trace of one tiny transformer layer's training steps on the CPU.

    python examples/trace_bf16_layer.py --out examples/profiles/tiny_layer_bf16.pt.trace.json.gz

The trace carries each call's shapes and dtypes (``record_shapes=True``), which is what
``profcast predict --profile TRACE --target-gpu FIGURES.yaml`` needs to forecast it call by call at bf16.
"""

import argparse
import gzip
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/profiles/tiny_layer_bf16.pt.trace.json.gz")
    parser.add_argument("--batchsize", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: PLC0415  torch is optional (the torch extra): missing, the example says so in one line
    except ImportError:
        print('profcast: error: this example needs PyTorch; run: pip install -e ".[torch]"', file=sys.stderr)
        return 2
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(args.width, nhead=4, dim_feedforward=4 * args.width, batch_first=True)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
    tokens = torch.randn(args.batchsize, args.seq_len, args.width)  # synthetic data: the trace is about the compute

    def train_step():
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = layer(tokens).float().pow(2).mean()
        loss.backward()
        optimizer.step()

    schedule = torch.profiler.schedule(wait=0, warmup=1, active=args.steps, repeat=1)
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU],
            record_shapes=True,
            schedule=schedule,
            on_trace_ready=lambda profiler: profiler.export_chrome_trace(str(trace)),
        ) as profiler:
            for _ in range(1 + args.steps):
                train_step()
                profiler.step()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with trace.open("rb") as source, gzip.open(out, "wb") as target:
            shutil.copyfileobj(source, target)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB, {args.steps} steps at bf16 (autocast)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
