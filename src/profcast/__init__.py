"""profcast: forecast a training job's per-op profile and step time on other cloud instances."""
