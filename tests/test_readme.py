"""The README's Python example runs as written, and does what its comments say."""
import os
import re

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_the_allocator_example_runs_and_says_true():
    blocks = python_blocks()
    assert len(blocks) == 1
    lines = blocks[0].splitlines()
    # The comment promises True: the pcp list gives the page freed zeroed back, with the hint.
    claim = next(i for i, line in enumerate(lines) if line.startswith("a.page_is_zeroed(pfn)"))
    assert "True" in lines[claim]
    lines[claim] = "assert a.page_is_zeroed(pfn) is True, 'the README says True'"
    exec(compile("\n".join(lines), README, "exec"), {})
