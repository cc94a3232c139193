"""Regressors that map an anchor profile to a target profile (and batch latency).

- ``profile_regressor.ProfileRegressor``: any scikit-learn multi-output regressor on the op vector
  (``conf/regressor/{lr,knn,dt,rf,ratio}.yaml`` wrap one), plus a batch-latency mapping.
- ``ratio.MedianRatioRegressor``: the per-op median-ratio baseline estimator.
- ``transfer.TransferRegressor``: profcast's own boosted per-op log-ratio model.
- ``profet.ProfetLatencyRegressor``: the PROFET-style latency predictor the benchmark compares with.
"""
