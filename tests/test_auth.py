"""An MLflow tracking server with the basic-auth app (helpers.governance): every action of
``governance.ACTIONS`` is tried without credentials and as a user holding each permission level on the
experiment and registered model it targets. Every try a level does not grant must be denied (401 without
credentials, 403 with them), every try it grants must succeed — one test per (action, who) pair.

One server serves the whole module (starting one costs seconds); it runs in tmp_path, never touches the
project's .work/mlflow store, and is stopped by the context manager even though the block ends in an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest

from helpers import governance
from helpers.governance import ACTIONS, LEVELS

WHO = ["no credentials", *LEVELS]
# MLflow's SQLite store triggers a SQLAlchemy deprecation notice when the auth client imports mlflow.server:
# about MLflow, not these tests (as in tests/test_registry.py).
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


class _EndOfBlock(Exception):
    """Raised at the end of the server's block, to prove it is stopped on an error too."""


@dataclass(frozen=True)
class Observed:
    matrix: pd.DataFrame
    client_errors: dict[str, str]
    client_read: str
    answered_after: bool


def _client_checks(server: governance.AuthServer) -> tuple[dict[str, str], str]:
    """The same rules seen through MlflowClient: bob (READ) reads, but cannot create a run; nobody
    without credentials reads."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    experiment = governance.make_fixture(server, "client_check", governance.ADMIN)
    bob = governance.create_user(server, "bob")
    governance.grant(server, "bob", "experiment", experiment.experiment_id, "READ")
    client = MlflowClient(tracking_uri=server.url)
    errors = {}
    with governance.as_user(bob):
        read = client.get_experiment(experiment.experiment_id).name
        try:
            client.create_run(experiment.experiment_id)
        except MlflowException as error:
            errors["bob creates a run"] = str(error)
    with governance.as_user(None):
        try:
            client.get_experiment(experiment.experiment_id)
        except MlflowException as error:
            errors["anonymous reads"] = str(error)
    return errors, read


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    from helpers.processes import port_open

    found: dict[str, object] = {}
    with pytest.raises(_EndOfBlock):
        with governance.auth_server(tmp_path_factory.mktemp("auth-server")) as server:
            found["url"] = server.url
            found["matrix"] = governance.permission_matrix(server)
            found["errors"], found["read"] = _client_checks(server)
            raise _EndOfBlock
    yield Observed(found["matrix"], found["errors"], found["read"], port_open(int(str(found["url"]).rsplit(":", 1)[1])))


DENIED = [(a.name, who) for a in ACTIONS for who in WHO
          if who == "no credentials" or not governance.allowed(a, who)]
ALLOWED = [(a.name, who) for a in ACTIONS for who in LEVELS if governance.allowed(a, who)]


@pytest.mark.parametrize(("action", "who"), DENIED)
def test_action_is_denied_without_the_permission(observed: Observed, action: str, who: str) -> None:
    expected = 401 if who == "no credentials" else 403
    assert observed.matrix.loc[action, who] == expected, f"{action} as {who}"


@pytest.mark.parametrize(("action", "who"), ALLOWED)
def test_action_is_allowed_with_the_permission(observed: Observed, action: str, who: str) -> None:
    assert observed.matrix.loc[action, who] == 200, f"{action} as {who}"


def test_the_whole_table_is_as_expected(observed: Observed) -> None:
    pd.testing.assert_frame_equal(observed.matrix, governance.expected_matrix())
    assert len(DENIED) == 32 and len(ALLOWED) == 18


def test_mlflow_client_sees_the_same_rules(observed: Observed) -> None:
    assert observed.client_read == "client_check"
    assert "403" in observed.client_errors["bob creates a run"]
    assert "401" in observed.client_errors["anonymous reads"]


def test_server_is_stopped_when_its_block_fails(observed: Observed) -> None:
    assert not observed.answered_after
