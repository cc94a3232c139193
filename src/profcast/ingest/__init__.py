"""Readers that turn profiler output into profile rows: ``tables`` (wide tables, validation),
``tfstats`` (TensorBoard tf_stats / XProf framework_op_stats exports), ``torch_trace`` (PyTorch
profiler traces), ``profile_files`` (any supported file or folder, kind read from the content),
``neusight`` / ``neusight_data`` (NeuSight's label files, hash-checked), ``embedded`` (the generated default, cached) and ``sources`` (the ``data`` options the config names)."""
