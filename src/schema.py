"""Column names shared by every module: run keys, workload keys and latency columns."""

# One profiled run is identified by these columns.
RUN_KEYS = ["exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize"]
# One workload (what was trained, independent of where and which repetition).
WORKLOAD_KEYS = ["dataset", "model", "optimizer", "batchsize"]
# Measured step/epoch times in seconds; optional in a profile table.
LATENCY_COLUMNS = ["batch_latency", "epoch_latency"]
BATCH_LATENCY = "batch_latency"


def op_columns(columns) -> list[str]:
    """The op-time columns of a profile table: everything that is not a key or a latency."""
    reserved = set(RUN_KEYS) | set(LATENCY_COLUMNS)
    return [c for c in columns if c not in reserved]
