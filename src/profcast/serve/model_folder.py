"""Check a model folder before anything of it is loaded: it must be a profcast job model and nothing else.

MLflow would load whatever the folder's ``MLmodel`` names (a cloudpickled Python object, code added
to ``sys.path``). ``profcast.predict`` first fetches the folder, reads ``MLmodel`` as YAML, requires our
``loader_module`` with no code or pickle of its own, and checks every skops file's types; only then
does MLflow load it.
"""

from __future__ import annotations

from pathlib import Path

from profcast.errors import ProfcastError

LOADER_MODULE = "profcast.serve.job_model"
# MLmodel keys of the python_function flavour that would run or import the folder's own code.
CODE_KEYS = ("code", "python_model", "cloudpickle_version", "model_code_path", "model_config")


def checked_model_folder(folder, shown: str | None = None) -> Path:
    """The folder, once its MLmodel names profcast's loader and its data folder checks out; else a one-line error."""
    import yaml

    folder = Path(folder)
    shown = shown or str(folder)
    mlmodel = folder / "MLmodel"
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ProfcastError(f"{shown}: not an MLflow model folder (MLmodel unreadable: {getattr(error, 'strerror', None) or error})") from None
    flavour = (spec or {}).get("flavors", {}).get("python_function") if isinstance(spec, dict) else None
    if not isinstance(flavour, dict) or flavour.get("loader_module") != LOADER_MODULE:
        raise ProfcastError(f"{shown}: not a profcast job model (its MLmodel does not load through {LOADER_MODULE}); "
                            "refusing to load it, as MLflow would run the folder's own code or pickle")
    own_code = [key for key in CODE_KEYS if flavour.get(key)]
    extra_flavours = sorted(set(spec["flavors"]) - {"python_function"})
    if own_code or extra_flavours:
        raise ProfcastError(f"{shown}: refusing a job model that carries code or other flavours ({', '.join(own_code + extra_flavours)})")
    data = folder / str(flavour.get("data") or "")
    if not flavour.get("data") or not data.resolve().is_relative_to(folder.resolve()) or not data.is_dir():
        raise ProfcastError(f"{shown}: its MLmodel data folder {flavour.get('data')!r} is missing or outside the model folder")
    from profcast.serve.job_model import check_job_model_folder

    check_job_model_folder(data)
    return folder
