"""The training pipeline's steps: ``pairing`` (anchor with target runs by workload keys), ``features``
(which op columns form the vector), ``splits`` (held-out model groups), ``evaluation`` (fit, predict
held-out rows) and ``metrics`` (error rates)."""
