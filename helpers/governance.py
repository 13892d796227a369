"""Collaboration, governance and security (notebook 24): secrets kept out of code, pseudonymised and
masked personal data, and an MLflow tracking server with users and permissions.

Secrets come from the environment or from an ignored ``.env`` file, never from a notebook::

    key = governance.get_secret("PII_HASH_KEY", env_file=".env")     # raises MissingSecretError if unset
    print(governance.describe_secret(key))                              # "set (43 characters)", never the value

Personal columns are replaced by keyed hashes (HMAC-SHA-256) and exposed to each role through a view::

    bookings = governance.pseudonymise(frame, ["agent"], key)           # adds agent_token
    governance.masked_view(spark, "bookings", "bookings_analyst", {"agent": "agent_token"})

A tracking server with MLflow's basic-auth app, its users and their permissions::

    with governance.auth_server(work_dir("nb24", "auth")) as server:   # stopped even on an error
        alice = governance.create_user(server, "alice")                 # a throwaway password
        governance.grant(server, "alice", "experiment", experiment_id, "EDIT")
        governance.try_action(server, "create run", alice, fixture)     # -> 200, 401 or 403

:func:`permission_matrix` tries every action of :data:`ACTIONS` as a user at each level of
:data:`LEVELS` (and without credentials): what ``tests/test_auth.py`` checks and notebook 24 draws.
The basic-auth app needs Flask-WTF (MLflow's ``auth`` extra) in the server's environment.
"""

from __future__ import annotations

import hmac
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.server.auth.client import AuthServiceClient
    from pyspark.sql import DataFrame, SparkSession

# ------------------------------------------------------------------------------------------ secrets


class MissingSecretError(KeyError):
    """A secret is neither in the environment nor in the ``.env`` file (the message names the variable only)."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """The ``NAME=value`` pairs of a ``.env`` file (python-dotenv's parser: comments, quotes, ``export``);
    an empty dict when the file does not exist. Nothing is put into ``os.environ``."""
    from dotenv import dotenv_values

    path = Path(path)
    if not path.is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value is not None}


def get_secret(name: str, env_file: str | Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Secret ``name`` from the environment (``environ``, default ``os.environ``), else from ``env_file``.
    Raises :class:`MissingSecretError` naming the variable (and never a value) when neither has it."""
    environment = os.environ if environ is None else environ
    value = environment.get(name) or (read_env_file(env_file).get(name) if env_file is not None else None)
    if not value:
        where = "the environment" + (f" or {Path(env_file).name}" if env_file is not None else "")
        raise MissingSecretError(f"{name} is not set in {where}: export it, or add {name}=... to an ignored "
                                 ".env file")
    return value


def new_password(nbytes: int = 24) -> str:
    """A throwaway password made at run time: ``nbytes`` random bytes, URL-safe text (32 characters for 24)."""
    return secrets.token_urlsafe(nbytes)


def describe_secret(value: str | None) -> str:
    """What may be shown about a secret: whether it is set and its length — never the value."""
    return f"set ({len(value)} characters)" if value else "not set"


def write_env_file(path: str | Path, values: Mapping[str, str]) -> Path:
    """Write ``values`` as a ``.env`` file readable only by its owner (mode 0600); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------------------------------ personal data


def token(value: str | None, key: str | bytes) -> str | None:
    """The pseudonym of ``value``: HMAC-SHA-256 keyed with ``key``, as 64 lower-case hex digits (None stays
    None). The same value always gives the same token, so tokens still join and group; without the key
    nobody can recompute them, which a plain (even salted-and-published) SHA-256 does not guarantee."""
    if value is None:
        return None
    secret = key.encode() if isinstance(key, str) else key
    return hmac.new(secret, value.encode("utf-8"), sha256).hexdigest()


def pseudonymise(frame: DataFrame, columns: Sequence[str], key: str | bytes, suffix: str = "_token",
                 drop: bool = False) -> DataFrame:
    """``frame`` with a ``<column><suffix>`` token (:func:`token`, computed by Spark's ``hmac``) next to each
    of ``columns``; with ``drop``, the original columns are removed. Nulls stay null."""
    from pyspark.sql import functions as F

    secret = key.encode() if isinstance(key, str) else key
    tokens = {f"{c}{suffix}": F.lower(F.hex(F.hmac(F.lit(secret), F.col(c).cast("string").cast("binary"))))
              for c in columns}
    result = frame.withColumns(tokens)
    return result.drop(*columns) if drop else result


def masked_view(spark: SparkSession, source: str, view: str, masks: Mapping[str, str],
                hide: Sequence[str] = ()) -> DataFrame:
    """Create (or replace) temporary view ``view`` over ``source``: every column of ``source`` except those in
    ``hide``, where a column named in ``masks`` is replaced by that SQL expression (kept under its name).
    Returns the view. What a role may read is then a matter of which view it is given."""
    unknown = sorted(set(masks) - set(spark.table(source).columns))
    if unknown:
        raise ValueError(f"masks name columns that {source} does not have: {', '.join(unknown)}")
    select = ", ".join(f"{masks[c]} AS `{c}`" if c in masks else f"`{c}`"
                       for c in spark.table(source).columns if c not in hide)
    spark.sql(f"CREATE OR REPLACE TEMP VIEW `{view}` AS SELECT {select} FROM `{source}`")
    return spark.table(view)


def generalise_rare(column: str, minimum: int, other: str = "other") -> str:
    """A SQL mask that keeps a categorical value only where at least ``minimum`` rows share it (a window
    count), and shows ``other`` elsewhere — so no shown value points at fewer than ``minimum`` rows."""
    return f"CASE WHEN count(*) OVER (PARTITION BY `{column}`) >= {int(minimum)} THEN `{column}` ELSE '{other}' END"


# ------------------------------------------------------------------------------------------ auth server

#: Permission levels on a resource, weakest first (``NO_PERMISSIONS``: no grant, with the server's default).
LEVELS = ("NO_PERMISSIONS", "READ", "EDIT", "MANAGE")
ADMIN = "admin"
#: Variables MLflow's clients read the basic-auth credentials from.
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
REQUEST_TIMEOUT_S = 30


@dataclass(frozen=True)
class AuthServer:
    """A running tracking server with basic auth: its URL and the administrator's credentials."""

    url: str
    admin: str = ADMIN
    admin_password: str = field(default="", repr=False)

    @property
    def api(self) -> str:
        return f"{self.url}/api/2.0/mlflow"


@dataclass(frozen=True)
class Credentials:
    """A user's name and password (the password never appears in a repr)."""

    username: str
    password: str = field(repr=False)

    @property
    def auth(self) -> tuple[str, str]:
        return self.username, self.password


def auth_config(folder: Path, default_permission: str = "NO_PERMISSIONS", cache_s: int = 300) -> Path:
    """Write the basic-auth app's configuration file in ``folder`` (users and grants in ``folder/auth.db``);
    ``default_permission`` is what a user gets on a resource with no grant; a correct password is remembered
    for ``cache_s`` seconds (MLflow's ``auth_cache_ttl_seconds``). No password is stored in it:
    :func:`auth_server` passes the admin's through the environment."""
    if default_permission not in LEVELS:
        raise ValueError(f"default_permission must be one of {', '.join(LEVELS)}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "basic_auth.ini"
    path.write_text("[mlflow]\n"
                    f"default_permission = {default_permission}\n"
                    f"database_uri = sqlite:///{folder / 'auth.db'}\n"
                    f"admin_username = {ADMIN}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    # a password check is a deliberately slow PBKDF2 hash: remember a correct one for a
                    # while (one worker, so no other process can hold a stale entry)
                    f"auth_cache_ttl_seconds = {int(cache_s)}\n",
                    encoding="utf-8")
    return path


@contextmanager
def auth_server(folder: Path, default_permission: str = "NO_PERMISSIONS",
                env: Mapping[str, str] | None = None) -> Iterator[AuthServer]:
    """An MLflow tracking server on loopback with the ``basic-auth`` app, for the duration of a ``with``
    block (stopped with its whole process group, even on an error). Its state lives in ``folder``, whose
    previous server's files are removed first (a throwaway server: users and runs start from nothing); the
    administrator's password and Flask's secret key are made at run time and passed through the environment
    (``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``), the configuration file through
    ``MLFLOW_AUTH_CONFIG_PATH``. ``env`` adds variables to the server's environment."""
    import shutil

    from helpers.mlflow_server import mlflow_server

    # the administrator's password is new every time, so the previous server's users cannot be reused
    for stale in ("auth.db", "mlflow.db", "server.log", "basic_auth.ini"):
        (folder / stale).unlink(missing_ok=True)
    shutil.rmtree(folder / "artifacts", ignore_errors=True)
    password = new_password()
    environment = {"MLFLOW_AUTH_CONFIG_PATH": str(auth_config(folder, default_permission)),
                   "MLFLOW_AUTH_ADMIN_PASSWORD": password,
                   "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32), **(env or {})}
    with mlflow_server(folder, app_name="basic-auth", env=environment) as url:
        yield AuthServer(url=url, admin_password=password)


@contextmanager
def as_user(credentials: Credentials | None) -> Iterator[None]:
    """MLflow's clients (``MlflowClient``, the auth client) authenticate as ``credentials`` inside the block
    (``None``: without credentials); the previous variables are restored afterwards."""
    saved = {name: os.environ.get(name) for name in (USERNAME_ENV, PASSWORD_ENV)}
    try:
        for name in saved:
            os.environ.pop(name, None)
        if credentials is not None:
            os.environ[USERNAME_ENV], os.environ[PASSWORD_ENV] = credentials.username, credentials.password
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def admin_credentials(server: AuthServer) -> Credentials:
    return Credentials(server.admin, server.admin_password)


def admin_client(server: AuthServer) -> AuthServiceClient:
    """MLflow's basic-auth client for ``server`` (``mlflow.server.get_app_client("basic-auth", ...)``); use it
    inside ``as_user(admin_credentials(server))``."""
    with warnings.catch_warnings():
        # importing mlflow.server loads its FastAPI app, whose Starlette import warns about Starlette's own
        # deprecated WSGI middleware: nothing to do with the caller
        warnings.filterwarnings("ignore", message=".*starlette.middleware.wsgi is deprecated")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="starlette")
        from mlflow.server import get_app_client

        return get_app_client("basic-auth", tracking_uri=server.url)


def create_user(server: AuthServer, username: str) -> Credentials:
    """Create ``username`` (as the administrator) with a throwaway password; returns the credentials."""
    credentials = Credentials(username, new_password())
    with as_user(admin_credentials(server)):
        admin_client(server).create_user(credentials.username, credentials.password)
    return credentials


def grant(server: AuthServer, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """As the administrator, give ``username`` ``permission`` (READ, EDIT or MANAGE) on one resource:
    ``resource_type`` ``"experiment"`` (by id) or ``"registered_model"`` (by name)."""
    with as_user(admin_credentials(server)):
        admin_client(server).grant_user_permission(username, resource_type, resource_id, permission)


def _request(server: AuthServer, method: str, path: str, credentials: Credentials | None,
             **kwargs: Any) -> Any:
    import requests

    url = path if path.startswith("http") else f"{server.api}/{path}"
    auth = None if credentials is None else credentials.auth
    return requests.request(method, url, auth=auth, timeout=REQUEST_TIMEOUT_S, **kwargs)


def _admin_json(server: AuthServer, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = _request(server, method, path, admin_credentials(server), **kwargs)
    response.raise_for_status()
    return response.json()


@dataclass(frozen=True)
class Fixture:
    """What one user's actions are tried on: an experiment with a run in it, and a registered model, all
    created by the administrator; ``other`` is a user whose permissions the action "change permissions"
    tries to change."""

    experiment_id: str
    run_id: str
    model: str
    other: str


def make_fixture(server: AuthServer, name: str, other: str) -> Fixture:
    """As the administrator: experiment ``name`` with one run, and registered model ``name``."""
    experiment_id = _admin_json(server, "POST", "experiments/create", json={"name": name})["experiment_id"]
    run = _admin_json(server, "POST", "runs/create", json={"experiment_id": experiment_id})
    _admin_json(server, "POST", "registered-models/create", json={"name": name})
    return Fixture(experiment_id, run["run"]["info"]["run_id"], name, other)


@dataclass(frozen=True)
class Action:
    """One thing a user may try, the permission level it needs, and the REST call that tries it."""

    name: str
    resource: str
    needs: str
    call: Callable[[AuthServer, Credentials | None, Fixture], Any] = field(repr=False)


def _grant_call(resource: str) -> Callable[[AuthServer, Credentials | None, Fixture], Any]:
    def call(server: AuthServer, who: Credentials | None, f: Fixture) -> Any:
        resource_id = f.experiment_id if resource == "experiment" else f.model
        return _request(server, "POST", f"{server.url}/api/3.0/mlflow/users/permissions/grant", who,
                        json={"username": f.other, "resource_type": resource, "resource_id": resource_id,
                              "permission": "READ"})
    return call


#: Every action tried, in the order tried: reads, then changes, then permission changes, deletions last.
ACTIONS: tuple[Action, ...] = (
    Action("read experiment", "experiment", "READ",
           lambda s, who, f: _request(s, "GET", "experiments/get", who, params={"experiment_id": f.experiment_id})),
    Action("read registered model", "registered_model", "READ",
           lambda s, who, f: _request(s, "GET", "registered-models/get", who, params={"name": f.model})),
    Action("log to a run", "experiment", "EDIT",
           lambda s, who, f: _request(s, "POST", "runs/log-metric", who,
                                      json={"run_id": f.run_id, "key": "m", "value": 1.0, "timestamp": 0})),
    Action("create run", "experiment", "EDIT",
           lambda s, who, f: _request(s, "POST", "runs/create", who, json={"experiment_id": f.experiment_id})),
    Action("rename experiment", "experiment", "EDIT",
           lambda s, who, f: _request(s, "POST", "experiments/update", who,
                                      json={"experiment_id": f.experiment_id, "new_name": f"{f.model}-renamed"})),
    Action("update registered model", "registered_model", "EDIT",
           lambda s, who, f: _request(s, "PATCH", "registered-models/update", who,
                                      json={"name": f.model, "description": "changed"})),
    Action("change experiment permissions", "experiment", "MANAGE", _grant_call("experiment")),
    Action("change model permissions", "registered_model", "MANAGE", _grant_call("registered_model")),
    Action("delete registered model", "registered_model", "MANAGE",
           lambda s, who, f: _request(s, "DELETE", "registered-models/delete", who, json={"name": f.model})),
    Action("delete experiment", "experiment", "MANAGE",
           lambda s, who, f: _request(s, "POST", "experiments/delete", who,
                                      json={"experiment_id": f.experiment_id})),
)


def allowed(action: Action, level: str) -> bool:
    """Whether a user holding ``level`` on the action's resource may do ``action``."""
    return LEVELS.index(level) >= LEVELS.index(action.needs)


def try_action(server: AuthServer, action: Action, who: Credentials | None, fixture: Fixture) -> int:
    """Try ``action`` as ``who`` (None: no credentials); returns the HTTP status: 200 done, 401 not
    authenticated, 403 authenticated but not permitted."""
    return int(action.call(server, who, fixture).status_code)


def permission_matrix(server: AuthServer, levels: Sequence[str] = LEVELS,
                      actions: Sequence[Action] = ACTIONS, prefix: str = "") -> pd.DataFrame:
    """Try every action without credentials and as one user per level (``<prefix><level>``, created here,
    granted that level on a fresh experiment and registered model of their own): the HTTP status of each
    (action, who) pair. Rows are the actions; columns ``"no credentials"`` and then ``levels``."""
    import pandas as pd

    witness = create_user(server, f"{prefix}witness")
    statuses: dict[str, dict[str, int]] = {}
    for who in ["no credentials", *levels]:
        fixture = make_fixture(server, f"{prefix}{who.replace(' ', '_').lower()}", witness.username)
        credentials = None
        if who != "no credentials":
            credentials = create_user(server, f"{prefix}{who.lower()}")
            if who != "NO_PERMISSIONS":
                grant(server, credentials.username, "experiment", fixture.experiment_id, who)
                grant(server, credentials.username, "registered_model", fixture.model, who)
        statuses[who] = {action.name: try_action(server, action, credentials, fixture) for action in actions}
    return pd.DataFrame(statuses).loc[[a.name for a in actions]]


def expected_matrix(levels: Sequence[str] = LEVELS, actions: Sequence[Action] = ACTIONS) -> pd.DataFrame:
    """The statuses :func:`permission_matrix` should find: 401 without credentials, 200 where the level
    grants the action, 403 where it does not."""
    import pandas as pd

    table = {"no credentials": {a.name: 401 for a in actions}}
    table.update({level: {a.name: 200 if allowed(a, level) else 403 for a in actions} for level in levels})
    return pd.DataFrame(table).loc[[a.name for a in actions]]


def unique_share(frame: pd.DataFrame, columns: Sequence[str]) -> float:
    """The share of rows whose values of ``columns`` no other row shares: how many records these
    quasi-identifiers single out (0 when every combination is shared by at least two rows)."""
    if len(frame) == 0:
        return 0.0
    sizes = frame.groupby(list(columns), dropna=False)[list(columns)[0]].transform("size")
    return float((sizes == 1).mean())
