"""Profile PyTorch training: one step function of yours (``profile_steps``) or a reference suite on this machine.

    row = profile_steps(train_step, steps=5, out_dir="profiles", instance="g4dn.xlarge",
                        model="resnet18", dataset="cifar10", optimizer="sgd", batchsize=64)
    profcast collect suite --suite cnn --instance g6.xlarge --out catalogue/

Modules: ``steps`` (record one step function's trace), ``networks`` (the suite's networks),
``suites`` (named suites and their workload order), ``workload`` (one workload on a device),
``manifest`` (the machine and every workload's outcome), ``runner`` (the resumable suite) and
``__main__`` (the command). docs/collect.md tells the whole story.
"""

from profcast.collect.steps import TRACE_SUFFIX, profile_steps, record_trace, trace_path

__all__ = ["TRACE_SUFFIX", "profile_steps", "record_trace", "trace_path"]
