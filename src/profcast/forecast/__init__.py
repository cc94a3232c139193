"""Forecasting from one profile: ``profile_input`` (the user's profile file), ``model_lookup`` (the job model by
URI or champion), ``ranking`` (every target ranked, a DataFrame), ``report`` (text, cells, plot), ``recommend``
(`profcast predict`'s text), ``new_gpu`` (a GPU nobody measured)."""
