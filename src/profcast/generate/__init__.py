"""Generate a physically grounded stand-in for the PROFET profiling study as raw tf_stats exports.

Nothing here is measured. Each op's time comes from the model's real layer shapes (FLOPs, bytes
moved, kernel launches) and each instance's public hardware figures, through a roofline with a
launch overhead and an occupancy ramp:

    time = launches * launch_overhead + max(flops / (peak * efficiency * saturation),
                                            bytes / (bandwidth * efficiency * saturation))
    saturation = work / (work + half_saturation_work)

so small ops are latency-bound, large ones throughput-bound, and the anchor->target ratio of an
op depends on the op and its size. Repetitions differ by multiplicative log-normal noise.
The output is what ``profcast.ingest.tfstats.read_tfstats_tree`` reads (own file naming + latency sidecar).

    profcast generate --out DIR [--seed N] [--instances p3.2xlarge,g4dn.xlarge]

Modules: networks (workloads and their ops), hardware (instance figures), costs (roofline and
noise), exports (the tf_stats writer); ``profcast generate`` is the command line.
"""
