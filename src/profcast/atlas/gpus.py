"""One name per GPU across sources: NeuSight's GPU names and AIConfigurator's systems -> the canonical slug.

NeuSight's names become slugs the way its label folders do (``profcast.ingest.neusight.instance_slug``:
``NVIDIA H100 80GB HBM3`` -> ``h100-80gb-hbm3``). AIConfigurator's systems map through ``SYSTEM_SLUGS``,
to NeuSight's slug where it is the same GPU (same part, memory size and bandwidth), otherwise to the slug
of the device name its tables record.
"""

from __future__ import annotations

from profcast.ingest.neusight import instance_slug

# AIConfigurator system (systems/<system>.yaml, systems/data/<system>/) -> slug.
SYSTEM_SLUGS = {
    "a100_pcie": "a100-80gb-pcie",  # NeuSight's "NVIDIA A100 80GB PCIe": 80 GB, 1.935 TB/s in both
    "a100_sxm": "a100-sxm4-80gb",  # device "NVIDIA A100-SXM4-80GB" (NeuSight's A100-SXM4 is the 40 GB part)
    "a30": "a30",
    "b200_sxm": "b200",  # device "NVIDIA B200"
    "b300_sxm": "b300",
    "b60": "arc-pro-b60",  # device "Intel(R) Arc(TM) Pro B60 Graphics"
    "gb200": "gb200",  # device "NVIDIA GB200"
    "gb300": "gb300",
    "h100_pcie": "h100-pcie",
    "h100_sxm": "h100-80gb-hbm3",  # NeuSight's "NVIDIA H100 80GB HBM3", the device name both record
    "h200_sxm": "h200",  # device "NVIDIA H200"
    "l4": "l4",  # NeuSight's "NVIDIA L4"
    "l40s": "l40s",  # device "NVIDIA L40S"
    "rtx_pro_6000_server": "rtx-pro-6000-blackwell-server",
}
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
