"""The benchmarks' shared parts: RESULTS.md is what the committed results give."""

import pytest

from benchmarks import results


@pytest.mark.parametrize("name", ["frontier", "per_task", "task_ceiling"])
def test_results_md_tables_are_what_the_committed_summaries_give(name):
    """(The batch count is computed from the corpus, in seconds; `python -m benchmarks.results --check`
    covers it.)"""
    blocks = {match.group(2): match.group(3) for match in results.BLOCK.finditer(results.RESULTS_MD.read_text())}
    assert blocks[name] == results.GENERATORS[name]()


def test_generated_blocks_are_rewritten_and_the_prose_around_them_kept(monkeypatch):
    monkeypatch.setitem(results.GENERATORS, "demo", lambda: "| new |")
    text = "prose\n<!-- generated: demo -->\n| old |\n<!-- end: demo -->\nmore prose\n"
    assert results.regenerate(text) == "prose\n<!-- generated: demo -->\n| new |\n<!-- end: demo -->\nmore prose\n"
    with pytest.raises(SystemExit, match="no generator for the block 'nameless'"):
        results.regenerate("<!-- generated: nameless -->\nx\n<!-- end: nameless -->")
