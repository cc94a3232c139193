"""Only for models logged before the package was named profcast (see src/serve/job_model.py)."""
