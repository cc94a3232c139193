"""The loader of models logged before the package was named profcast (their MLmodel names
``src.serve.job_model``): served from a checkout, they load through today's ``profcast.serve.loader``.
profcast's own commands read such models wherever they run (``profcast.serve.loading``)."""

from profcast.serve.loader import _load_pyfunc  # noqa: F401
