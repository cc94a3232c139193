"""Tooling that starts servers beside the library: the shared MLflow tracking server on PostgreSQL
(``tracking_server``) and a local ``mlflow models serve`` for tests and benchmarks (``model_server``).
Nothing in the library imports these."""
