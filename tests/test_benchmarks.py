"""The benchmarks' shared parts: RESULTS.md is what the committed results give, committed runs are
read back, fixed runs are read at a growing run's compute."""

import json

import pytest

from benchmarks import growth_frontier, results, streams
from benchmarks.streams import Stream


@pytest.mark.parametrize("name", ["frontier", "per_task", "task_ceiling", "growth_frontier"])
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


def test_a_committed_stream_run_is_read_back_not_trained_again(tmp_path, monkeypatch):
    stream = Stream("growclip-seed", (256, 512), 1.0, 1e-3, "fp32", (0,), tmp_path / "runs", chunk_samples=1000,
                    results=tmp_path / "results")
    stream.results.mkdir()
    summary = {"name": "fixed", "seed": 0, "seconds": 1.0, "settings": stream.settings("fixed", 0, growth="fixed"),
               "history": [{"total_tflop": 1.0, "stream_heldout_loss": 2.0}]}
    stream.summary_path("fixed", 0).write_text(json.dumps(summary))
    monkeypatch.setattr(streams, "train", lambda *args: pytest.fail("a committed run was trained again"))
    assert stream.run("fixed", 0, growth="fixed") == summary
    assert stream.stored("fixed", 0, growth="fixed", chunk_samples=2000) is None  # other settings: another run


def test_a_fixed_run_is_read_at_the_growing_runs_compute_between_its_chunk_ends():
    run = {"history": [{"total_tflop": 1.0, "loss": 3.0}, {"total_tflop": 10.0, "loss": 2.0},
                       {"total_tflop": 100.0, "loss": 1.0}]}
    assert growth_frontier.value_at(run, 10 ** 0.5, "loss") == pytest.approx(2.5)  # linear in log-compute
    assert growth_frontier.value_at(run, 101.0, "loss") == 1.0  # a rounding past the end: the end
    assert growth_frontier.value_at(run, 0.5, "loss") is None and growth_frontier.value_at(run, 200, "loss") is None


def test_a_run_committed_for_some_seeds_keeps_its_row_and_names_them():
    def run(seed, loss):
        return {"seed": seed, "history": [{"total_tflop": 1.0, "loss": loss}, {"total_tflop": 4.0, "loss": loss / 2}]}

    per_seed = [{"frontier": run(0, 3.0), "variant": run(0, 2.0), "fixed": run(0, 4.0)},
                {"frontier": run(1, 5.0), "fixed": run(1, 6.0)}]
    labelled = growth_frontier.labelled_by_seeds(per_seed)
    assert [list(runs) for runs in labelled] == [["frontier", "variant (seed 0)", "fixed"], ["frontier", "fixed"]]
    table = growth_frontier.anytime_table(labelled, "loss", lower=True)
    assert "| 0 | 1.0 | 4.000 | 2.000 | 5.000 |" in table  # medians over the seeds each run has
    assert table.splitlines()[2].endswith(" | -2.000 |")  # every growing run's gap to the best fixed, on its seeds
