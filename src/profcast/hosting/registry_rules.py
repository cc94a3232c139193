"""Who may change the shared server's model registry: the login check MLflow's basic-auth app runs.

``basic_auth.ini`` names ``authenticate_request`` as the app's ``authorization_function``; MLflow calls
it on every request (profcast.hosting.credentials writes the file). It checks the login with MLflow's
own basic auth (PBKDF2 hashes; a verified login is cached for ``auth_cache_ttl_seconds`` under an
HMAC of the password, so a job's requests do not re-hash it each time), then refuses, HTTP 403, the
registry changes only an admin may make:

- creating a registered model: whoever creates one gets MANAGE on it, so any logged-in user could
  make ``profcast-<another anchor>``, register a model of their own in it and name it champion;
- setting or deleting an alias: ``@champion`` is what serving loads, so only an admin moves it.

Every other request is MLflow's to authorise (``default_permission = READ``: everyone reads, changes
need the owner's or the admin's grant).
"""

from __future__ import annotations

import functools

from flask import request
from mlflow.protos.model_registry_pb2 import CreateRegisteredModel, DeleteRegisteredModelAlias, SetRegisteredModelAlias
from mlflow.server import auth
from mlflow.server.handlers import get_endpoints
from werkzeug.datastructures import Authorization

ADMIN_ONLY_REQUESTS = (CreateRegisteredModel, SetRegisteredModelAlias, DeleteRegisteredModelAlias)


@functools.cache
def admin_only_routes() -> frozenset[tuple[str, str]]:
    """(path, HTTP method) of every REST route (api and ajax-api) of the admin-only requests."""

    endpoints = get_endpoints(lambda request_class: request_class if request_class in ADMIN_ONLY_REQUESTS else None)
    return frozenset(
        (path, method) for path, handler, methods in endpoints if handler in ADMIN_ONLY_REQUESTS for method in methods
    )


def authenticate_request():
    """MLflow's basic-auth login check, then HTTP 403 for a non-admin's admin-only registry change."""
    # Imported here: importing the auth app opens its user store, which only the server has.

    authorization = auth.authenticate_request_basic_auth()
    if (
        isinstance(authorization, Authorization)
        and (request.path, request.method) in admin_only_routes()
        and not auth.store.get_user(authorization.username).is_admin
    ):
        return auth.make_forbidden_response()
    return authorization
