"""MLflow tracking: ``store`` (which store and experiment), ``runs`` (what a job logs, including its
servable model), ``sweep`` (the parent run of a -m sweep), ``plots`` (the logged figures)."""
