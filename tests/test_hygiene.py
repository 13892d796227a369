"""helpers.hygiene: the pre-commit check on what committed notebooks store."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import hygiene


def _write(folder: Path, *cells: nbformat.NotebookNode) -> Path:
    path = folder / "example.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Example"), *cells]), path)
    return path


def _printed(text: str) -> nbformat.NotebookNode:
    return new_output("stream", name="stdout", text=text)


def test_a_clean_notebook_passes(tmp_path: Path) -> None:
    saved = new_code_cell("print('saved .work/models/ames')", outputs=[_printed("saved .work/models/ames\n")])
    result = new_output("execute_result", data={"text/plain": "2"}, execution_count=2)
    path = _write(tmp_path, saved, new_code_cell("1 + 1", outputs=[result]))
    assert hygiene.check(path, root=tmp_path) == []
    assert hygiene.main([str(path)]) == 0


def test_a_stored_error_fails_unless_the_cell_expects_it(tmp_path: Path) -> None:
    error = new_output("error", ename="ValueError", evalue="bad value", traceback=["ValueError: bad value"])
    path = _write(tmp_path, new_code_cell("raise ValueError('bad value')", outputs=[error]))
    assert hygiene.check(path, root=tmp_path) == ["cell 1: stored error ValueError: bad value"]

    expected = new_code_cell("raise ValueError('bad value')", outputs=[error], metadata={"tags": ["raises-exception"]})
    assert hygiene.check(_write(tmp_path, expected), root=tmp_path) == []


def test_stderr_output_fails(tmp_path: Path) -> None:
    warning = new_output("stream", name="stderr", text="WARN NativeCodeLoader: Unable to load native-hadoop library\n")
    path = _write(tmp_path, new_code_cell("spark.range(3).count()", outputs=[warning]))
    problems = hygiene.check(path, root=tmp_path)
    assert len(problems) == 1 and problems[0].startswith("cell 1: stored stderr output")


def test_absolute_paths_of_the_machine_fail(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    cases = {
        "/home/ada/": _printed("saved /home/ada/curriculum/.work/models/ames\n"),
        "/Users/ada/": new_output("execute_result", data={"text/plain": "PosixPath('/Users/ada/x')"},
                                  execution_count=1),
        "C:\\Users\\": _printed("C:\\Users\\ada\\curriculum\n"),
        "/tmp/pytest-of-ada/": _printed("written to /tmp/pytest-of-ada/run/table\n"),
        f"{root.as_posix()}/": _printed(f"file:{root.as_posix()}/.work/warehouse\n"),
    }
    for found, output in cases.items():
        path = _write(tmp_path, new_code_cell("print(path)", outputs=[output]))
        problems = hygiene.check(path, root=root)
        assert problems == [f"cell 1: absolute path of this machine {found!r} (use helpers.display_path)"], found


def test_a_path_in_the_source_fails_once_per_cell(tmp_path: Path) -> None:
    cell = new_code_cell("open('/home/ada/data.csv')", outputs=[_printed("/home/ada/data.csv\n")])
    assert len(hygiene.check(_write(tmp_path, cell), root=tmp_path / "checkout")) == 1


def test_urls_and_relative_paths_pass(tmp_path: Path) -> None:
    text = "see https://example.org/home/page/ and datasets/raw/planes.csv; spark.sql.warehouse.dir=.work/tmp/x/\n"
    assert hygiene.check(_write(tmp_path, new_code_cell("print(text)", outputs=[_printed(text)])), root=tmp_path) == []


def test_main_reports_each_problem_and_fails(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, new_code_cell("x", outputs=[new_output("stream", name="stderr", text="oops\n")]))
    assert hygiene.main([str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}: cell 1: stored stderr output")


def test_an_unreadable_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    assert hygiene.check(path, root=tmp_path)[0].startswith("cannot be read as a notebook")


def test_credentials_fail_in_code_outputs_and_markdown(tmp_path: Path) -> None:
    shaped_like_credentials = [
        'token = "dapi0123456789abcdef0123456789abcdef"',
        "aws_access_key_id AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1B2" * 9,
        "-----BEGIN RSA PRIVATE KEY-----",
        "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey=Zm9vYmFyYmF6cXV4cXV1eA==;",
        "MLFLOW_TRACKING_URI=https://alice:s3cretpass@mlflow.example.org",
        'password = "hunter2hunter2"',
        "MLFLOW_TRACKING_PASSWORD='correct-horse-battery'",
        '{"api_key": "sk-live-1234567890"}',
    ]
    for text in shaped_like_credentials:
        for cell in (new_code_cell(text), new_code_cell("print(x)", outputs=[_printed(text)]), new_markdown_cell(text)):
            problems = hygiene.check(_write(tmp_path, cell), root=tmp_path)
            assert problems == ["cell 1: something shaped like a credential (read secrets from the environment)"], text


def test_names_of_secrets_and_placeholders_pass(tmp_path: Path) -> None:
    harmless = [
        'password = os.environ["MLFLOW_TRACKING_PASSWORD"]',
        "KEY_NAME = \"CURRICULUM_PII_KEY\"",  # a name, not a value
        'token = "…"',
        'password = "<your password>"',
        "print(governance.describe_secret(pii_key))  # set (43 characters)",
        "http://127.0.0.1:5000/api/2.0/mlflow/experiments/get",
        "tokens = governance.pseudonymise(frame, ['agent'], key)",
    ]
    for text in harmless:
        cell = new_code_cell(text, outputs=[_printed(text)])
        assert hygiene.check(_write(tmp_path, cell), root=tmp_path) == [], text
