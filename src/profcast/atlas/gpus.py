"""One name per GPU across sources: NeuSight's GPU names and AIConfigurator's systems -> the canonical slug.

NeuSight's names become slugs the way its label folders do (``profcast.ingest.neusight.instance_slug``:
``NVIDIA H100 80GB HBM3`` -> ``h100-80gb-hbm3``). AIConfigurator's systems map through ``SYSTEM_SLUGS``
(``profcast.ingest.gpu_systems``, the one table, which the figures reader uses too), to NeuSight's slug where it is the same GPU (same part, memory size and bandwidth), otherwise to the slug
of the device name its tables record.
"""

from __future__ import annotations

from profcast.ingest.gpu_systems import SYSTEM_SLUGS
from profcast.ingest.neusight import instance_slug

# Device names an AIConfigurator table records that no slug rule reads well.
DEVICE_SLUGS = {
    "Intel(R) Arc(TM) Pro B60 Graphics": "arc-pro-b60",
    "Intel(R) Graphics [0xe211]": "arc-pro-b60",  # the B60's oneCCL table names its PCI id
}


def gpu_slug(device_name: str) -> str:
    """The canonical slug of a GPU's device name (``NVIDIA L4`` -> ``l4``, ``Tesla T4`` -> ``t4``)."""
    name = str(device_name).strip()
    if name in DEVICE_SLUGS:
        return DEVICE_SLUGS[name]
    return instance_slug(name.replace(" ", "_"))


def system_slug(system: str) -> str | None:
    """The slug of an AIConfigurator system name, None if the table does not know it."""
    return SYSTEM_SLUGS.get(system)
