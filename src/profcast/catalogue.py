"""The instance catalogue: each cloud instance's GPU, vCPUs, price and memory, and NeuSight's GPUs.

Training (a job's peak-memory record) and prediction (the ranking's price and cost) both read it, so it
sits low, beside the config it is read from (conf/instances.yaml, conf/gpus.yaml).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from profcast.config import CONF_DIR

INSTANCE_CATALOGUE = CONF_DIR / "instances.yaml"
GPU_CATALOGUE = CONF_DIR / "gpus.yaml"  # NeuSight's GPUs: figures, and price where one cloud instance has exactly one


def load_catalogue(path=INSTANCE_CATALOGUE, gpu_path=GPU_CATALOGUE) -> dict[str, dict]:
    """Instance name -> {gpu, vcpus, price_per_hour, memory_gb} from conf/instances.yaml, plus the GPUs of
    conf/gpus.yaml (NeuSight's, keyed by their instance_name) priced as their one-GPU cloud instance."""
    catalogue = dict(OmegaConf.to_container(OmegaConf.load(path))["instances"])
    if gpu_path is not None and Path(gpu_path).is_file():
        for name, gpu in OmegaConf.to_container(OmegaConf.load(gpu_path))["gpus"].items():
            shown = f"{gpu['gpu']} ({gpu['cloud_instance']})" if gpu.get("cloud_instance") else gpu["gpu"]
            price = gpu.get("price_per_hour")
            catalogue.setdefault(
                name,
                {
                    "gpu": shown,
                    "vcpus": gpu.get("vcpus"),
                    "price_per_hour": float("nan") if price is None else price,
                    "memory_gb": gpu.get("memory_gb"),
                },
            )
    return catalogue
