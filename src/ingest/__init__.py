"""Readers that turn profiler output into profile rows: ``tables`` (wide tables, validation),
``tfstats`` (TensorBoard tf_stats exports), ``embedded`` (the generated default, cached) and
``sources`` (the ``data`` options the config names)."""
