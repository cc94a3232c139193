"""Public hardware figures of the generated study's instances, and the roofline's constants."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Hardware:
    """One instance's figures. Peak, bandwidth, SM/core and vCPU counts are from public spec
    sheets; efficiencies and overheads are assumptions, set so that the instances' relative
    speeds roughly follow those measured in the PROFET study (p3 >> g4dn > g3s > p2)."""

    accelerator: str
    peak_tflops: float  # FP32 peak of the one GPU (or of the vCPUs' AVX-512 units)
    memory_gbs: float  # GPU memory (or DRAM share) bandwidth
    parallel_units: int  # SMs on a GPU, physical cores on a CPU
    launch_us: float  # fixed cost per kernel (GPU launch / CPU op dispatch + thread fan-out)
    compute_efficiency: float  # sustained fraction of peak on large GEMM/conv
    memory_efficiency: float  # sustained fraction of bandwidth on streaming ops
    copy_gbs: float  # host->device input copy (PCIe; DRAM copy on CPU-only instances)
    vcpus: int
    host_speed: float  # single-thread speed of the host CPU relative to a 2.3 GHz Broadwell
    is_gpu: bool = True


def _avx512_tflops(vcpus: int, ghz: float = 2.5) -> float:
    # vCPUs are hyperthreads: vcpus/2 cores x 2 FMA units x 16 FP32 lanes x 2 FLOP per FMA,
    # at the all-core AVX-512 clock (lower than the advertised 3.0-3.6 GHz).
    return vcpus / 2 * 2 * 16 * 2 * ghz / 1e3


INSTANCES = {
    # NVIDIA Tesla M60: one of the board's two GPUs (16 SMs, 4.8 TFLOPS, 160 GB/s).
    "g3s.xlarge": Hardware("Tesla M60", 4.8, 160, 16, 3.5, 0.50, 0.65, 10, 4, 1.0),
    "g3.4xlarge": Hardware("Tesla M60", 4.8, 160, 16, 3.5, 0.50, 0.65, 10, 16, 1.0),
    # NVIDIA T4 (40 SMs, 8.1 TFLOPS, 320 GB/s); its 70 W cap keeps it well below peak.
    "g4dn.xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 4, 1.2),
    "g4dn.4xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 16, 1.2),
    "g4dn.16xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 64, 1.2),
    # NVIDIA K80: one of the board's two GPUs (13 SMs, 4.4 TFLOPS boost, 240 GB/s).
    "p2.xlarge": Hardware("Tesla K80", 4.37, 240, 13, 5.0, 0.32, 0.50, 10, 4, 1.0),
    # NVIDIA V100 SXM2 16 GB (80 SMs, 15.7 TFLOPS, 900 GB/s).
    "p3.2xlarge": Hardware("Tesla V100", 15.7, 900, 80, 2.5, 0.70, 0.80, 11, 8, 1.0),
    # Intel Xeon Platinum 8124M/8275CL (AVX-512), no GPU; DRAM bandwidth is the instance's
    # share of two 6-channel DDR4 sockets (an estimate, not a spec-sheet figure).
    "c5.4xlarge": Hardware("Xeon (8 cores)", _avx512_tflops(16), 60, 8, 6.0, 0.35, 0.60, 60, 16, 1.3, False),
    "c5.9xlarge": Hardware("Xeon (18 cores)", _avx512_tflops(36), 120, 18, 8.0, 0.35, 0.60, 120, 36, 1.3, False),
    "c5.18xlarge": Hardware("Xeon (36 cores)", _avx512_tflops(72), 240, 36, 11.0, 0.35, 0.60, 240, 72, 1.3, False),
}

# Work items per SM a kernel needs to reach half the peak rate (a GPU hides latency with many
# resident threads); a CPU core reaches it with a few cache lines of work.
HALF_SATURATION_PER_UNIT = {True: 1024, False: 256}
# Backprop-filter reduces over the batch and runs below forward-conv efficiency; a recurrent
# step is a chain of small GEMMs.
KIND_EFFICIENCY = {"conv": 1.0, "conv_filter": 0.85, "gemm": 1.0, "rnn": 0.6, "memory": 1.0}
# Host-side cost (us) of issuing one GPU kernel (TF executor + CUDA launch) on a 1.0-speed host.
DISPATCH_US = 6.0
STEP_OVERHEAD_US = 1200.0  # Keras train_step: Python, host/device sync, metrics readback
