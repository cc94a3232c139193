"""Serving forecasts: ``loader`` (MLflow's loader_module: the job model with 400s for bad requests),
``model_folder`` (a model folder checked, then loaded with profcast's own code), ``model_info`` (which
model and data a forecast stands on), ``profile_input`` (a user's profile file) and ``recommend``
(instances ranked by predicted step time and cost)."""
