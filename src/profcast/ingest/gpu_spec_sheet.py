"""What AIConfigurator's figures files leave out (SM count, L2, FP32 vector peak), from the vendors' spec sheets.

AIConfigurator's ``systems/<gpu>.yaml`` gives tensor peaks per precision, bandwidth and power, but no SM
count, L2 size or FP32 vector peak, which the kernel model's features (waves of output tiles over the
SMs, bytes over L2) and its element-wise rooflines need. This is the one table of them; a figure the
file itself gives is never replaced, and a GPU not listed keeps its gaps.

Nor does it give a clock, which the per-call model (``--target-gpu`` with ``--anchor``) reads: vendors
publish the FP32 vector peak as 2 FLOPs (one FMA) x FP32 lanes per SM x SMs x boost clock, so
``derived_figures`` takes the clock that peak implies. The rule gives back the published boost clock of
A100 SXM (19.5 TFLOPS, 108 SMs x 64 lanes: 1,411 MHz against 1,410), H100 SXM (67, 132 x 128: 1,983 MHz against 1,980)
and L40S (91.6, 142 x 128: 2,520 MHz).
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
# slug -> FP32 lanes per SM of its architecture (NVIDIA's whitepapers: GA100 64; Hopper, Ada, Blackwell 128)
FP32_LANES_PER_SM = {"a100-sxm4-80gb": 64, "h100-80gb-hbm3": 128, "h200": 128, "b200": 128, "gb200": 128, "l40s": 128}
SPEC_SHEET_SOURCE = "ingest/gpu_spec_sheet.py"


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


def derived_figures(figures):
    """(figures, what was derived): the spec sheet's SMs, L2 and FP32 peak, then the clock that FP32 peak implies.

    Each derived figure is named in a phrase the answer prints; a figure the file gives is kept as given.
    """
    filled = with_spec_sheet(figures)
    derived = [
        f"{key} {getattr(filled, key):g} (published spec sheet, {SPEC_SHEET_SOURCE})"
        for key in ("sm_count", "l2_mb", "fp32_tflops")
        if getattr(figures, key) is None and getattr(filled, key) is not None
    ]
    lanes = FP32_LANES_PER_SM.get(figures.name)
    if filled.clock_mhz is None and lanes and filled.fp32_tflops and filled.sm_count:
        clock = filled.fp32_tflops * 1e6 / (2 * filled.sm_count * lanes)  # TFLOPS -> MHz
        filled = replace(filled, clock_mhz=clock)
        derived.append(
            f"clock_mhz {clock:.0f} (derived: FP32 peak / (2 x {filled.sm_count:g} SMs x {lanes} FP32 lanes per SM))"
        )
    return filled, derived
