"""The job model, free of MLflow: every target's regressor behind one ``predict`` (``model``), written and
read as skops files without pickle (``storage``, ``legacy``), the request checks and column names
(``requests``), the forecast columns (``forecast_columns``, ``forecast_extras``) and answer shapes
(``answer_format``), and serving speed-ups (``shared_neighbours``, ``one_thread``)."""
