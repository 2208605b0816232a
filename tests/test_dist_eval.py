"""Metrics pooled exactly over the ranks: the same models evaluated on 1, 2 and 3 shards of their
test splits (torchrun, gloo) give the same accuracy and mIoU (their counts are summed, never
averaged) and the same AP (every rank's detections gathered and scored once); no sample is
counted twice when the split does not divide evenly. ``antlers eval`` under torchrun prints the
one-process figures once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import antlers
from antlers.data import load_dataset
from antlers.engine.loader import epoch_order
from antlers.tasks.segment.task import load_segmentation

WORKER = Path(__file__).parent / "scripts" / "eval_worker.py"


def _launch(args: list[str], nproc: int, timeout: float = 300) -> str:
    """``args`` under torchrun with ``nproc`` processes (or plainly for 1); returns the output."""
    command = [sys.executable]
    if nproc > 1:
        command += ["-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--standalone"]
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        output, errors = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"still running after {timeout} s: {' '.join(args)}")
    assert proc.returncode == 0, errors[-3000:]
    return output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A classify and a segment run folder, trained for one short epoch."""
    out = tmp_path_factory.mktemp("runs")
    classify = antlers.train(
        "classify", data="digits", model="lecture_cnn", image_size=16, epochs=1, out=str(out)
    )
    segment = antlers.train(
        "segment", data="scenes", model="unet-w4-d2", image_size=16, epochs=1, batch_size=500,
        out=str(out),
    )  # fmt: skip
    return classify.path, segment.path


def test_held_out_shards_are_exact_partitions_without_padding():
    for n, world_size in [(10, 3), (500, 3), (2, 3), (7, 2)]:
        shards = [
            epoch_order(n, 0, shuffle=False, seed=0, rank=r, world_size=world_size).tolist()
            for r in range(world_size)
        ]
        assert sorted(i for shard in shards for i in shard) == list(range(n))


def test_metrics_equal_for_one_two_and_three_ranks(runs, tmp_path):
    classify, segment = runs
    results = {}
    for world_size in (1, 2, 3):
        out = tmp_path / f"world{world_size}"
        out.mkdir()
        _launch([str(WORKER), str(out), str(classify), str(segment)], world_size)
        results[world_size] = json.loads((out / "rank0.json").read_text())
        for rank in range(1, world_size):  # every rank holds the pooled figures
            other = json.loads((out / f"rank{rank}.json").read_text())
            assert other == results[world_size]
    one = results[1]
    scenes = load_segmentation("scenes", "test", image_size=16)
    sizes = (len(load_dataset("digits", "test").labels), len(scenes), 60)
    assert (one["classify"]["count"], one["segment"]["count"], one["detect"]["count"]) == sizes
    assert 0.05 < one["detect"]["ap"] < 0.95
    for world_size in (2, 3):
        many = results[world_size]
        for task in ("classify", "segment", "detect"):
            assert many[task]["count"] == one[task]["count"], (task, world_size)
        assert many["classify"]["accuracy"] == one["classify"]["accuracy"]
        assert many["classify"]["loss"] == pytest.approx(one["classify"]["loss"], rel=1e-6)
        assert many["segment"]["miou"] == pytest.approx(one["segment"]["miou"], abs=1e-6)
        assert many["segment"]["pixel_accuracy"] == one["segment"]["pixel_accuracy"]
        for key in ("ap", "ap50", "ap75"):
            assert many["detect"][key] == one["detect"][key], (key, world_size)


def test_antlers_eval_under_torchrun_prints_the_one_process_figures_once(runs):
    classify, _ = runs
    args = ["-m", "antlers", "eval", str(classify), "--json"]
    one = json.loads(_launch(args, 1))
    many = json.loads(_launch(args, 3))  # rank 0 alone prints
    assert (many["accuracy"], many["count"]) == (one["accuracy"], one["count"])
