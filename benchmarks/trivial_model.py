"""A pyfunc model that does nothing: the floor of what ``mlflow models serve`` costs per request."""

import mlflow


class Identity(mlflow.pyfunc.PythonModel):
    """Returns the request as it came."""

    def predict(self, context, model_input, params=None):
        return model_input
