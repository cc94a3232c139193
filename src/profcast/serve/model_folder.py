"""Check a model folder before anything of it is loaded, and load it with profcast's own code.

MLflow would load whatever the folder's ``MLmodel`` names (a cloudpickled Python object, code added
to ``sys.path``). profcast's commands first fetch the folder, read ``MLmodel`` as YAML, require our
``loader_module`` (or the one models logged before the rename name) and no pickled Python model, and
check every skops file's types. They then build the model from its data folder with the profcast that
runs them: the copy of profcast a model carries (``code``, for ``mlflow models serve`` in an
environment of its own) is never imported here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from profcast.errors import ProfcastError
from profcast.jobmodel.legacy import LEGACY_LOADER_MODULE
from profcast.jobmodel.storage import LOADER_MODULE, check_job_model_folder, load_job_model_folder
from profcast.serve.loader import ServedJobModel

LOADER_MODULES = (LOADER_MODULE, LEGACY_LOADER_MODULE)
# MLmodel keys of the python_function flavour that would unpickle or run a model of another kind.
FOREIGN_MODEL_KEYS = ("python_model", "cloudpickle_version", "model_code_path", "model_config")


def checked_model_folder(folder, shown: str | None = None) -> Path:
    """The folder, once its MLmodel names profcast's loader and its data folder checks out; else a one-line error."""
    _checked_spec(Path(folder), shown or str(folder))
    return Path(folder)


def load_checked_model(folder, shown: str | None = None):
    """The job model in ``folder`` as an MLflow ``PyFuncModel`` (signature checks included), built by
    this process's profcast from the checked data folder; the folder's own code is not run."""
    from mlflow.models import Model  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.pyfunc import PyFuncModel  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    folder = Path(folder)
    data = _checked_spec(folder, shown or str(folder))
    return PyFuncModel(
        model_meta=Model.load(str(folder / "MLmodel")), model_impl=ServedJobModel(load_job_model_folder(data))
    )


def _checked_spec(folder: Path, shown: str) -> Path:
    """The model's checked data folder."""

    mlmodel = folder / "MLmodel"
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ProfcastError(
            f"{shown}: not an MLflow model folder (MLmodel unreadable: {getattr(error, 'strerror', None) or error})"
        ) from None
    flavour = (spec or {}).get("flavors", {}).get("python_function") if isinstance(spec, dict) else None
    if not isinstance(flavour, dict) or flavour.get("loader_module") not in LOADER_MODULES:
        raise ProfcastError(
            f"{shown}: not a profcast job model (its MLmodel does not load through {LOADER_MODULE}); "
            "refusing to load it, as MLflow would run the folder's own code or pickle"
        )
    foreign = [key for key in FOREIGN_MODEL_KEYS if flavour.get(key)]
    extra_flavours = sorted(set(spec["flavors"]) - {"python_function"})
    if foreign or extra_flavours:
        raise ProfcastError(
            f"{shown}: refusing a job model that carries a pickled model or other flavours ({', '.join(foreign + extra_flavours)})"
        )
    code = flavour.get("code")
    if code and not (folder / str(code)).resolve().is_relative_to(folder.resolve()):
        raise ProfcastError(f"{shown}: its MLmodel code folder {code!r} is outside the model folder")
    data = folder / str(flavour.get("data") or "")
    if not flavour.get("data") or not data.resolve().is_relative_to(folder.resolve()) or not data.is_dir():
        raise ProfcastError(
            f"{shown}: its MLmodel data folder {flavour.get('data')!r} is missing or outside the model folder"
        )

    check_job_model_folder(data)
    return data
