"""Collective and point-to-point times: measured NCCL tables where the GPU has them, node figures where not.

AIConfigurator's ``nccl_perf.parquet`` gives the latency (ms) of all_reduce, all_gather, reduce_scatter
and alltoall by message size (bytes) for 2, 4 and 8 GPUs of one node in half precision. A group of
those sizes inside one node reads the table, interpolated log-log in the message size (beyond the
largest message, at the largest message's bandwidth). Any other group (another size, or spanning
nodes) uses the ring formulas over the node figures: an all-reduce moves ``2 (n-1)/n`` of the message
per GPU, an all-gather or reduce-scatter ``(n-1)/n``, each step paying the link latency; a group
spanning nodes runs at the network's per-GPU bandwidth (NCCL's rings inside a node are faster).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from profcast.distributed.system import GpuSystem

RING_TRAFFIC = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0, "alltoall": 1.0}


class Collectives:
    """Seconds of collectives and sends for one GPU kind."""

    def __init__(self, system: GpuSystem):
        self.system = system
        self.table = _nccl_curves(str(system.nccl_table)) if system.nccl_table is not None else {}

    def measured(self, op: str, group: int, across_nodes: bool = False) -> bool:
        """Whether this collective reads the measured table (else the node figures)."""
        return not across_nodes and (op, group) in self.table

    def seconds(self, op: str, message_bytes: float, group: int, across_nodes: bool = False) -> float:
        """Time of one collective ``op`` over ``group`` GPUs on a message of ``message_bytes``."""
        if group <= 1 or message_bytes <= 0:
            return 0.0
        if self.measured(op, group, across_nodes):
            sizes, seconds = self.table[(op, group)]
            if message_bytes > sizes[-1]:  # past the table: the largest message's bandwidth
                return float(seconds[-1] * message_bytes / sizes[-1])
            return float(np.exp(np.interp(np.log(message_bytes), np.log(sizes), np.log(seconds))))
        bandwidth = self.system.inter_node_bandwidth if across_nodes else self.system.intra_node_bandwidth
        steps = RING_TRAFFIC[op] * (group - 1)
        return steps / group * message_bytes / bandwidth + steps * self.system.link_latency_s

    def send_seconds(self, message_bytes: float, across_nodes: bool = False) -> float:
        """Time of one point-to-point send between neighbouring pipeline stages."""
        bandwidth = self.system.inter_node_bandwidth if across_nodes else self.system.intra_node_bandwidth
        return message_bytes / bandwidth + self.system.link_latency_s


@lru_cache(maxsize=8)
def _nccl_curves(table_path: str) -> dict:
    table = pd.read_parquet(table_path, columns=["op_name", "nccl_dtype", "num_gpus", "message_size", "latency"])
    table = table[table["nccl_dtype"] == "half"]
    curves = {}
    for (op, group), rows in table.groupby(["op_name", "num_gpus"]):
        rows = rows.groupby("message_size")["latency"].median().sort_index()
        curves[(str(op), int(group))] = (rows.index.to_numpy(float), rows.to_numpy(float) * 1e-3)
    return curves
