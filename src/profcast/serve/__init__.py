"""The served model, what ``mlflow models serve`` runs: ``loader`` (MLflow's loader_module: the job model with
400s for bad requests), ``request_guard`` (oversized or malformed bodies refused first), ``model_folder`` (a
model folder checked, then loaded with profcast's own code), ``registry_check`` (a champion checked before it
is served) and ``model_info`` (which model and data a forecast stands on). The client is ``profcast.forecast``."""
