"""What AIConfigurator's figures files leave out (SM count, L2, FP32 vector peak), from the vendors' spec sheets.

AIConfigurator's ``systems/<gpu>.yaml`` gives tensor peaks per precision, bandwidth and power, but no SM
count, L2 size or FP32 vector peak, which the kernel model's features (waves of output tiles over the
SMs, bytes over L2) and its element-wise rooflines need. This is the one table of them; a figure the
file itself gives is never replaced, and a GPU not listed keeps its gaps.
"""

from __future__ import annotations

from dataclasses import replace

# slug -> (SMs, L2 MB, FP32 vector TFLOPS or None), with where each figure was published.
SPEC_SHEET = {
    "a100-sxm4-80gb": (108, 40, 19.5),  # NVIDIA A100 Tensor Core GPU Architecture whitepaper; A100 datasheet
    "h100-80gb-hbm3": (132, 50, 67.0),  # NVIDIA H100 Tensor Core GPU Architecture whitepaper; H100 SXM datasheet
    "h200": (132, 50, 67.0),  # the H100's GH100 die (NVIDIA H200 datasheet: FP32 67 TFLOPS)
    "b200": (148, 126, 80.0),  # NVIDIA Blackwell datasheet, HGX B200 at 1,000 W: FP32 80 TFLOPS
    "gb200": (148, 126, 90.0),  # the same GPU at 1,200 W in GB200 (NVIDIA Blackwell datasheet: FP32 90 TFLOPS)
    "l40s": (142, 96, 91.6),  # NVIDIA Ada Lovelace architecture whitepaper; L40S datasheet
    "arc-pro-b60": (20, 18, None),  # Intel Arc Pro B60 product page: 20 Xe cores, 18 MB L2
}


def with_spec_sheet(figures):
    """The figures with the SM count, L2 and FP32 vector peak the spec sheet gives filled in where they are None."""
    published = SPEC_SHEET.get(figures.name)
    if published is None:
        return figures
    filled = {
        key: float(value)
        for key, value in zip(("sm_count", "l2_mb", "fp32_tflops"), published)
        if value is not None and getattr(figures, key) is None
    }
    return replace(figures, **filled)
