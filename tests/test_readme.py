"""The README's programmatic example runs as written."""

import os
import re

from tests.conftest import REPO_ROOT


def test_programmatic_example_runs(capsys):
  text = open(os.path.join(REPO_ROOT, "README.md")).read()
  section = text.split("## Use the step from your own code", 1)[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in printed] == ["0", "1", "2"]
  assert namespace["images"].shape == (8, 32, 32, 3)
  assert int(namespace["gan_state"].step) == 3
