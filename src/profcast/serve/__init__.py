"""Serving forecasts: ``job_model`` (the servable model, loaded without pickle), ``requests`` (request
checks and the model signature), ``registry`` (the champion alias), ``profile_input`` (reading a
user's profile file) and ``recommend`` (ranking instances by predicted step time, cost)."""
