"""nbval executes each lab's solution (solutions/), not the unsolved lab beside it.

A lab and its solution are the same notebook but for their TODO cells (tests/test_labs.py proves it cell by cell),
so executing both repeated every set-up and every shared step. What only the unsolved lab shows — each check
answering "not answered yet", and the closing line pointing at the solution — is checked in its committed outputs by
tests/test_labs.py, and each check's feedback to a wrong answer by the lab modules' own tests."""

from pathlib import Path

collect_ignore = [path.name for path in Path(__file__).parent.glob("[0-9][0-9]-lab-*.ipynb")]
