"""helpers.governance without a server: secrets from the environment or a .env file, keyed pseudonyms (the
same in Python and in Spark), masked views, and the expected permission table. The server itself is
tested in tests/test_auth.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import governance
from helpers.governance import ACTIONS, LEVELS, Credentials, MissingSecretError

KEY = "unit-test-key-not-a-secret"


# ------------------------------------------------------------------------------------------ secrets


def test_env_file_is_parsed_without_touching_the_environment(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# team settings\nexport HASH_KEY='abc def'\nEMPTY=\nPLAIN=value # comment\n")
    values = governance.read_env_file(env)
    assert values == {"HASH_KEY": "abc def", "EMPTY": "", "PLAIN": "value"}
    assert "HASH_KEY" not in os.environ
    assert governance.read_env_file(tmp_path / "missing.env") == {}


def test_secret_comes_from_the_environment_first_then_the_env_file(tmp_path: Path) -> None:
    env = governance.write_env_file(tmp_path / ".env", {"HASH_KEY": "from-file"})
    assert governance.get_secret("HASH_KEY", env, environ={}) == "from-file"
    assert governance.get_secret("HASH_KEY", env, environ={"HASH_KEY": "from-env"}) == "from-env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600  # readable by its owner only


def test_missing_secret_names_the_variable_and_no_value(tmp_path: Path) -> None:
    env = governance.write_env_file(tmp_path / ".env", {"OTHER": "do-not-show-me"})
    with pytest.raises(MissingSecretError) as raised:
        governance.get_secret("HASH_KEY", env, environ={"ALSO": "hidden-value"})
    message = str(raised.value)
    assert "HASH_KEY" in message and ".env" in message
    assert "do-not-show-me" not in message and "hidden-value" not in message
    with pytest.raises(MissingSecretError):
        governance.get_secret("HASH_KEY", None, environ={"HASH_KEY": ""})  # empty counts as unset


def test_passwords_are_fresh_and_only_described() -> None:
    first, second = governance.new_password(), governance.new_password()
    assert first != second and len(first) == 32
    assert governance.describe_secret(first) == "set (32 characters)"
    assert first not in governance.describe_secret(first)
    assert governance.describe_secret(None) == governance.describe_secret("") == "not set"
    assert first not in repr(Credentials("alice", first))


def test_as_user_sets_and_restores_the_client_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(governance.USERNAME_ENV, "before")
    monkeypatch.delenv(governance.PASSWORD_ENV, raising=False)
    with governance.as_user(Credentials("alice", "pw-alice-123456")):
        assert os.environ[governance.USERNAME_ENV] == "alice"
        assert os.environ[governance.PASSWORD_ENV] == "pw-alice-123456"
    assert os.environ[governance.USERNAME_ENV] == "before" and governance.PASSWORD_ENV not in os.environ
    with pytest.raises(RuntimeError), governance.as_user(None):
        assert governance.USERNAME_ENV not in os.environ
        raise RuntimeError("restored even on an error")
    assert os.environ[governance.USERNAME_ENV] == "before"


def test_auth_config_holds_no_password(tmp_path: Path) -> None:
    text = governance.auth_config(tmp_path, "READ").read_text()
    assert "default_permission = READ" in text and "admin_username = admin" in text
    assert "password" not in text.replace("admin_username", "")
    with pytest.raises(ValueError):
        governance.auth_config(tmp_path, "OWNER")


# ------------------------------------------------------------------------------------------ personal data


def test_token_is_a_keyed_deterministic_hash() -> None:
    first = governance.token("prt", KEY)
    assert first == governance.token("prt", KEY.encode()) and len(first) == 64
    assert first != governance.token("prt", "another-key") != governance.token("esp", KEY)
    # the known HMAC-SHA-256 of "message" under "key" (as in Spark's documentation)
    assert governance.token("message", "key").upper().startswith("6E9EF29B75FFFC5B")
    assert governance.token(None, KEY) is None


def test_spark_pseudonyms_equal_the_python_ones(spark) -> None:
    frame = spark.createDataFrame([("prt", 1), ("gbr", 2), (None, 3)], "country string, n int")
    rows = governance.pseudonymise(frame, ["country"], KEY).orderBy("n").collect()
    assert [r.country_token for r in rows] == [governance.token(r.country, KEY) for r in rows]
    assert rows[2].country_token is None
    dropped = governance.pseudonymise(frame, ["country"], KEY, suffix="_id", drop=True)
    assert dropped.columns == ["n", "country_id"]


def test_masked_view_masks_hides_and_generalises(spark) -> None:
    rows = [("prt", "ana", 1), ("prt", "rui", 2), ("prt", "eva", 3), ("isl", "jon", 4)]
    spark.createDataFrame(rows, "country string, agent string, n int").createOrReplaceTempView("gov_unit")
    view = governance.masked_view(spark, "gov_unit", "gov_unit_analyst",
                                  {"country": governance.generalise_rare("country", 3), "agent": "'***'"},
                                  hide=["n"])
    assert view.columns == ["country", "agent"]
    assert sorted(tuple(r) for r in view.collect()) == [("other", "***"), ("prt", "***"), ("prt", "***"),
                                                        ("prt", "***")]
    assert spark.table("gov_unit").count() == 4  # the source is untouched
    with pytest.raises(ValueError, match="salary"):
        governance.masked_view(spark, "gov_unit", "gov_bad", {"salary": "0"})


# ------------------------------------------------------------------------------------------ permissions


def test_expected_table_follows_the_permission_levels() -> None:
    table = governance.expected_matrix()
    assert list(table.columns) == ["no credentials", *LEVELS]
    assert list(table.index) == [a.name for a in ACTIONS]
    assert (table["no credentials"] == 401).all() and (table["NO_PERMISSIONS"] == 403).all()
    assert (table["MANAGE"] == 200).all()
    assert table.loc["read experiment", "READ"] == 200 and table.loc["create run", "READ"] == 403
    assert table.loc["log to a run", "EDIT"] == 200 and table.loc["delete experiment", "EDIT"] == 403
    # each level allows everything the level below it allows
    for weaker, stronger in zip(LEVELS, LEVELS[1:], strict=False):
        assert ((table[weaker] == 200) <= (table[stronger] == 200)).all()
    assert {a.needs for a in ACTIONS} == {"READ", "EDIT", "MANAGE"}
    assert {a.resource for a in ACTIONS} == {"experiment", "registered_model"}


def test_unique_share_counts_the_rows_a_combination_singles_out() -> None:
    import pandas as pd

    frame = pd.DataFrame({"country": ["prt", "prt", "gbr", None], "adults": [2, 2, 1, 2]})
    assert governance.unique_share(frame, ["country"]) == 0.5
    assert governance.unique_share(frame, ["country", "adults"]) == 0.5
    assert governance.unique_share(frame.iloc[:2], ["country", "adults"]) == 0.0
    assert governance.unique_share(frame.iloc[:0], ["country"]) == 0.0
