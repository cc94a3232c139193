"""Plan a distributed training run: a transformer's step on N GPUs with data, tensor and pipeline parallelism.

``model_config`` (config.json -> per-layer calls), ``plan`` (the parallel plan and its checks),
``system`` (the GPU kind and its node), ``gemm_times`` and ``collectives`` (measured tables or figures),
``terms`` (one function per named term), ``memory``, ``step`` (a plan's forecast), ``search``,
``fit`` and ``constants`` (the fitted constants), ``layer_profile`` (a traced layer), ``ground_truth`` (measured steps to score on),
``report`` (the command's text). docs/distributed.md tells the model and its accuracy.
"""
