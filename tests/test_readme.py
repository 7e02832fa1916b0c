"""The README's Python snippet runs as written, and says what it does."""

import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_python_snippet_runs_as_written(tmp_path, monkeypatch):
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["res"].trials) == 5 and scope["res"].folder == Path("runs/a")
    assert (tmp_path / "runs" / "a" / "summary.json").is_file()
    assert len(scope["exp"].summaries) == 10
    pd.testing.assert_frame_equal(scope["exp"].trials, scope["again"].trials)
    assert scope["compnet"].count_linear_pieces(scope["net"]) == 8
