"""The benchmarks' shared parts: RESULTS.md is what the committed results give."""

import pytest

from benchmarks import frontier, results


def test_results_md_frontier_table_is_what_the_committed_runs_give():
    blocks = {match.group(2): match.group(3) for match in results.BLOCK.finditer(results.RESULTS_MD.read_text())}
    assert blocks["frontier"] == frontier.report(frontier.read_points(frontier.GRID))


def test_generated_blocks_are_rewritten_and_the_prose_around_them_kept(monkeypatch):
    monkeypatch.setitem(results.GENERATORS, "demo", lambda: "| new |")
    text = "prose\n<!-- generated: demo -->\n| old |\n<!-- end: demo -->\nmore prose\n"
    assert results.regenerate(text) == "prose\n<!-- generated: demo -->\n| new |\n<!-- end: demo -->\nmore prose\n"
    with pytest.raises(SystemExit, match="no generator for the block 'nameless'"):
        results.regenerate("<!-- generated: nameless -->\nx\n<!-- end: nameless -->")
