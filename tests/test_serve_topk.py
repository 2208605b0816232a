"""``antlers serve``'s top images per channel (view 3): the answer against a brute-force search
over the same test images, the 202 progress while computing, the cache in the run folder, and
the refusals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from antlers.serve.app import ServeConfig, create_app

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def served(classify_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A client over a copy of the session's classify run (the cache is written into it)."""
    folder = tmp_path_factory.mktemp("topk") / "runs" / "classify" / "run"
    shutil.copytree(classify_run.path, folder)
    app = create_app(ServeConfig(runs=(str(folder.parent.parent),), lecture=False))
    with TestClient(app, base_url=BASE, raise_server_exceptions=True) as client:
        run_id = client.get("/api/runs").json()[0]["id"]
        yield client, app.state.topk_jobs, run_id, folder


def brute_force_top(run_dir: Path, layer: str, channel: int, k: int) -> list[int]:
    """Every test image's maximum of ``channel`` over positions, sorted (ties: earlier first)."""
    from antlers import Run
    from antlers.explain.layers import capture
    from antlers.explain.report import run_subject, test_images
    from antlers.serve.topk import MAX_IMAGES

    run = Run.load(run_dir)
    images, _ = test_images(run_subject(run), MAX_IMAGES)
    with torch.no_grad():
        maps = capture(run.model.eval(), images.float() / 255, [layer])[layer]
    best = [float(m.max()) for m in maps[:, channel]]
    return sorted(range(len(best)), key=lambda i: (-best[i], i))[:k]


def test_a_channels_top_images_equal_a_brute_force_search(served: Any) -> None:
    client, jobs, run_id, folder = served
    layers = client.get(f"/api/runs/{run_id}/channels").json()
    assert layers
    assert all(entry["channels"] >= 1 for entry in layers)
    layer, channel = layers[-1]["layer"], layers[-1]["channels"] - 1
    url = f"/api/runs/{run_id}/topk?layer={layer}&channel={channel}&k=5"
    first = client.get(url)
    if first.status_code == 202:  # computing: the progress, then the answer
        assert first.json()["pending"] is True
        jobs.wait()
    answer = client.get(url)
    assert answer.status_code == 200
    found = answer.json()
    assert [entry["index"] for entry in found["images"]] == brute_force_top(
        folder, layer, channel, 5
    )
    values = [entry["value"] for entry in found["images"]]
    assert values == sorted(values, reverse=True)
    assert all(entry["patch"].startswith("data:image/png;base64,") for entry in found["images"])
    assert list((folder / "explain").glob("topk-*.safetensors"))


def test_unknown_layers_and_channels_are_refused_with_the_allowed_ones(served: Any) -> None:
    client, _, run_id, _ = served
    layers = client.get(f"/api/runs/{run_id}/channels").json()
    bad_layer = client.get(f"/api/runs/{run_id}/topk?layer=nope&channel=0")
    assert bad_layer.status_code == 422
    assert layers[0]["layer"] in bad_layer.json()["error"]
    last = layers[0]["channels"]
    bad_channel = client.get(f"/api/runs/{run_id}/topk?layer={layers[0]['layer']}&channel={last}")
    assert bad_channel.status_code == 422
    assert f"channels 0 to {last - 1}" in bad_channel.json()["error"]


def test_a_pass_that_fails_is_reported_once_not_started_again(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error in the background pass answers 500 with its cause, instead of a job
    that starts again, silently, at every poll."""
    import antlers.explain

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    client, jobs, run_id, folder = served
    monkeypatch.setattr(antlers.explain, "top_k_activations", broken)
    for cached in (folder / "explain").glob("topk-*.safetensors"):
        cached.unlink()
    layer = client.get(f"/api/runs/{run_id}/channels").json()[0]["layer"]
    url = f"/api/runs/{run_id}/topk?layer={layer}&channel=0"
    failed = client.get(url)
    if failed.status_code == 202:  # still running: its end, then the answer
        jobs.wait()
        failed = client.get(url)
    assert failed.status_code == 500
    assert "RuntimeError: boom" in failed.json()["error"]
