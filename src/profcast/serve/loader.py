"""MLflow's ``loader_module`` for profcast job models: ``mlflow models serve`` and ``mlflow.pyfunc.load_model``.

The job model (``profcast.jobmodel``) raises ``ProfcastError`` for a bad request; here that becomes
``MlflowException(INVALID_PARAMETER_VALUE)``, which MLflow's scoring server answers with HTTP 400 and a
one-line JSON message. Nothing is unpickled: the data folder holds skops files and a JSON manifest.

    mlflow models serve -m models:/profcast-g3s.xlarge@champion --env-manager local
"""

from __future__ import annotations

import importlib

from profcast.errors import ProfcastError
from profcast.jobmodel.storage import load_job_model_folder
from profcast.serve import code_copy, request_guard


class ServedJobModel:
    """A job model whose refusals are MLflow's 400s."""

    def __init__(self, job_model):
        self.job_model = job_model

    def get_raw_model(self):
        """The job model itself (MLflow's PyFuncModel.get_raw_model hands it out: profcast.predict reads its vocabulary)."""
        return self.job_model

    def predict(self, model_input, params=None):
        """The job model's answer; a bad request raises MlflowException(INVALID_PARAMETER_VALUE)."""
        from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

        try:
            return self.job_model.predict(model_input, params)
        except ProfcastError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


def _load_pyfunc(data_path: str) -> ServedJobModel:
    """MLflow's entry point for ``loader_module`` models: the job model from its data folder.

    Inside ``mlflow models serve`` it also installs the request guard (profcast.serve.request_guard). A
    process that has profcast of its own keeps it: the model's copy leaves ``sys.path`` (serve.code_copy).
    """
    if code_copy.drop_model_code_copies() is not None:
        # This module is the model's copy, imported because load_model ran before any profcast import;
        # the process's own profcast builds the model instead, and later imports find it, not the copy.
        code_copy.forget_imported_copy()
        return importlib.import_module("profcast.serve.loader")._load_pyfunc(data_path)

    if request_guard.in_scoring_server():
        request_guard.install()
    return ServedJobModel(load_job_model_folder(data_path))
