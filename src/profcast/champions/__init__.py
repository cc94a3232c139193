"""Registering job models: the best job per anchor as ``profcast-<anchor>@champion`` (``champion``), and the
Hydra callback that does it after a sweep (``callback``)."""
