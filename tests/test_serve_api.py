"""``antlers serve``'s HTTP API: the same answers as the CLI and the library, JSON errors with
fitting statuses, the Host check, the upload limits, many requests at once."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from antlers.serve.app import ServeConfig, create_app
from antlers.serve.security import host_allowed

BASE = "http://127.0.0.1:8000"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def digit(seed: int, size: int = 16) -> bytes:
    """A grey test picture: a few random bright strokes on black."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size, size), np.uint8)
    for _ in range(3):
        r, c = rng.integers(0, size - 4, 2)
        pixels[r : r + rng.integers(2, 5), c : c + rng.integers(2, 5)] = 255
    return png(Image.fromarray(pixels))


def upload(name: str, data: bytes) -> dict[str, Any]:
    return {"image": (name, data, "image/png")}


@pytest.fixture(scope="module")
def runs_folder(classify_run: Any, segment_run: Any, detect_run: Any, generate_run: Any) -> Path:
    """The folder that holds the four session runs (runs/<task>/run)."""
    return classify_run.path.parent.parent


@pytest.fixture(scope="module")
def client(runs_folder: Path) -> Iterator[TestClient]:
    app = create_app(ServeConfig(runs=(str(runs_folder),), max_upload_mb=0.05))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def cli_json(run: Path, file: Path) -> dict[str, Any]:
    """What ``antlers predict RUN FILE --json --out FILE's folder`` prints, the folder taken
    out of the names (as the server answers for an upload of that file)."""
    from antlers.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["predict", str(run), str(file), "--json", "--out", str(file.parent)]) == 0
    (row,) = json.loads(printed.getvalue().replace(f"{file.parent}/", ""))
    return row


def test_runs_are_listed_from_their_metadata(client: TestClient, classify_run: Any) -> None:
    from antlers import Run
    from antlers.nn.lecture import LECTURE_CLASSES
    from antlers.serve.runs import LECTURE_CLASSES as LISTED

    listed = {r["id"]: r for r in client.get("/api/runs").json()}
    assert set(listed) == {
        "classify-run", "segment-run", "detect-run", "generate-run", "lecture_cnn", "alexnet",
    }  # fmt: skip
    run = Run.load(classify_run.path)
    assert listed["classify-run"] == {
        "id": "classify-run",
        "task": "classify",
        "classes": run.classes,
        "model": "lecture_cnn",
        "input": {"channels": 1, "height": 16, "width": 16},
        "trained": True,
    }
    assert listed["lecture_cnn"]["classes"] == list(LECTURE_CLASSES) == list(LISTED)


@pytest.mark.parametrize("task", ["classify", "segment", "detect"])
def test_predict_answers_what_the_cli_prints(
    client: TestClient, runs_folder: Path, tmp_path: Path, segment_run: Any, task: str
) -> None:
    file = tmp_path / "scene.png"
    source = sorted((Path(segment_run.data) / "images").glob("*.png"))[0]
    image = Image.open(source) if task != "classify" else Image.open(io.BytesIO(digit(1)))
    file.write_bytes(png(image.convert("RGB") if task == "detect" else image))
    answer = client.post(
        f"/api/runs/{task}-run/predict", files=upload("scene.png", file.read_bytes())
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == cli_json(runs_folder / task / "run", file)


def test_a_generate_run_does_not_predict(client: TestClient) -> None:
    answer = client.post("/api/runs/generate-run/predict", files=upload("a.png", digit(0)))
    assert answer.status_code == 422
    assert "sample" in answer.json()["error"]


def test_errors_are_json_with_a_fitting_status(client: TestClient, tmp_path: Path) -> None:
    from antlers.cli import error_line
    from antlers.io.images import ImageError, open_image

    missing = client.post("/api/runs/nope/predict", files=upload("a.png", digit(0)))
    assert missing.status_code == 404
    assert "classify-run" in missing.json()["error"]  # names the known runs

    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageError) as refused:
        open_image(tmp_path / "bad.png")
    cli_message = error_line(refused.value)[1].replace(f"{tmp_path}/", "")
    bad = client.post(
        "/api/runs/classify-run/predict", files=upload("bad.png", b"not an image at all")
    )
    assert (bad.status_code, bad.json()) == (400, {"error": cli_message})

    empty = client.post("/api/runs/classify-run/predict", files=upload("e.png", b""))
    assert empty.status_code == 400
    assert (
        client.post(
            "/api/runs/classify-run/predict?top=0", files=upload("a.png", digit(0))
        ).status_code
        == 422
    )
    no_field = client.post("/api/runs/classify-run/predict")
    assert no_field.status_code == 422
    assert "image" in no_field.json()["error"]
    assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


def test_uploads_over_the_limits_are_refused_before_decoding(client: TestClient) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)
    big = png(Image.fromarray(noise))  # ~90 kB of noise: through the body limit (64 kB slack)
    assert len(big) > 0.05 * 2**20
    answer = client.post("/api/runs/classify-run/predict", files=upload("big.png", big))
    assert answer.status_code == 413
    assert "over the limit of 0.05 MB" in answer.json()["error"]

    huge = png(Image.new("1", (5000, 5000)))  # a small file of 25 million pixels
    assert len(huge) < 0.05 * 2**20
    answer = client.post("/api/runs/classify-run/predict", files=upload("huge.png", huge))
    assert answer.status_code == 413
    assert "25,000,000 pixels" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
        for _ in range(200):
            yield b"x" * 1024

    streamed = client.post(
        "/api/conv", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert "larger than the server's limit" in streamed.json()["error"]


def test_a_server_error_sends_no_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from antlers.serve import network

    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("/home/secret/path")

    monkeypatch.setattr(network, "look_inside", broken)
    answer = client.post("/api/runs/classify-run/explain", files=upload("a.png", digit(0)))
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error (KeyError); the server's log has more"}


def test_the_host_header_must_be_the_address_served(client: TestClient) -> None:
    assert client.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200
    refused = client.get("/api/runs", headers={"host": "evil.example:8000"})
    assert refused.status_code == 400
    assert "evil.example" in refused.json()["error"]
    assert host_allowed("[::1]:8000", "127.0.0.1")
    assert host_allowed("192.168.1.5:8000", "0.0.0.0")
    assert not host_allowed("rebind.example:8000", "0.0.0.0")
    assert not host_allowed("192.168.1.6", "192.168.1.5")


def test_conv_equals_the_definition(client: TestClient) -> None:
    from antlers.conv import conv2d_naive

    rng = np.random.default_rng(3)
    for stride, padding in [(1, 0), (2, 1), (3, 2)]:
        x, w = rng.normal(size=(7, 9)), rng.normal(size=(3, 2))
        body = {"image": x.tolist(), "kernel": w.tolist(), "stride": stride, "padding": padding}
        out = np.array(client.post("/api/conv", json=body).json()["output"])
        expected = conv2d_naive(x[None, None], w[None, None], stride=stride, padding=padding)[0, 0]
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    too_big = {"image": [[0.0] * 40] * 3, "kernel": [[1.0]]}
    answer = client.post("/api/conv", json=too_big)
    assert answer.status_code == 422
    assert "1 to 32" in answer.json()["error"]


def test_explain_has_run_predicts_numbers(client: TestClient, classify_run: Any) -> None:
    import torch

    from antlers import Run
    from antlers.explain import grad_cam
    from antlers.io.images import image_to_tensor

    run = Run.load(classify_run.path)
    picture = Image.open(io.BytesIO(digit(5)))
    answer = client.post("/api/runs/classify-run/explain", files=upload("d.png", digit(5))).json()
    probabilities = run.predict([picture]).probabilities[0]
    shown = {p["label"]: p["probability"] for p in answer["probabilities"]}
    assert shown == {c: float(p) for c, p in zip(run.classes, probabilities, strict=True)}
    x = image_to_tensor(picture, 1, (16, 16))
    cam, _ = grad_cam(run.model, x[None], layer=answer["cam"]["layer"])
    np.testing.assert_allclose(answer["cam"]["values"], cam[0].detach().numpy(), atol=1e-4)
    assert [m["layer"] for m in answer["maps"]] == ["1.conv1", "1.pool1", "1.conv2", "1.pool2"]
    assert torch.is_tensor(probabilities)


def test_many_requests_at_once_get_their_own_answers(client: TestClient) -> None:
    def ask(i: int) -> Any:
        route = "predict" if i % 2 else "explain"
        answer = client.post(f"/api/runs/classify-run/{route}", files=upload(f"{i}.png", digit(i)))
        body = answer.json()
        return body["top"] if route == "predict" else (body["probabilities"], body["cam"])

    alone = [ask(i) for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(ask, range(12)))
    assert together == alone
    assert len({json.dumps(a) for a in alone}) > 6  # different images, different answers


def test_the_task_views_equal_the_library(
    client: TestClient, segment_run: Any, detect_run: Any, generate_run: Any, classify_run: Any
) -> None:
    from antlers import Run
    from antlers.explain import sliding_window_logits

    scene = sorted((Path(segment_run.data) / "images").glob("*.png"))[0]
    seg = client.post("/api/runs/segment-run/segment", files=upload("s.png", scene.read_bytes()))
    shares = Run.load(segment_run.path).predict([Image.open(scene)]).shares(0)
    assert {row["label"]: row["share"] for row in seg.json()["legend"]} == shares

    objects = sorted((Path(detect_run.data).parent / "images").glob("*.png"))[0]  # 64x64
    det = client.post("/api/runs/detect-run/detect", files=upload("o.png", objects.read_bytes()))
    (expected,) = Run.load(detect_run.path).predict([Image.open(objects)]).to_json()
    found = [{k: d[k] for k in ("label", "score", "box")} for d in det.json()["detections"]]
    assert found == expected["detections"]

    body = {"label": "3", "steps": 4, "seed": 7, "n": 2, "guidance": 2.0}
    first = client.post("/api/runs/generate-run/sample", json=body).json()
    assert len(first["samples"]) == 2
    assert first["frames"][0]["t"] > first["frames"][-1]["t"]
    assert client.post("/api/runs/generate-run/sample", json=body).json() == first
    bad = client.post("/api/runs/generate-run/sample", json={**body, "label": "moose"})
    assert bad.status_code == 422

    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40), dtype=np.uint8))
    slide = client.post("/api/runs/classify-run/slide", files=upload("b.png", png(big))).json()
    from antlers.io.images import image_to_tensor

    run = Run.load(classify_run.path)
    heat = sliding_window_logits(run.model, image_to_tensor(big, 1), (16, 16), (4, 4)).softmax(0)
    values = np.array([c["values"] for c in slide["classes"]])
    np.testing.assert_allclose(values, heat.numpy(), atol=1e-4)
    assert client.get("/api/runs/classify-run/kernels").json()["shape"] == [10, 1, 3, 3]
    assert client.get("/api/runs/alexnet/layers").json()["total_params"] == 62_378_344


def test_antlers_serve_starts_warns_and_stops_on_ctrl_c(runs_folder: Path) -> None:
    command = [sys.executable, "-m", "antlers", "serve", str(runs_folder), "--host", "0.0.0.0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        line = server.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        listed = httpx.get(url + "api/runs", timeout=30).json()
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert line.startswith("antlers serve: 4 runs at http://127.0.0.1:")
    assert len(listed) == 6
    assert "anyone on the network" in err
    assert server.returncode == 0
    assert "stopped" in out


def test_the_wheel_ships_the_page(tmp_path: Path) -> None:
    """pip builds the wheel offline from a copy of the sources; the page's files are in it."""
    import shutil
    import zipfile

    from antlers.serve.app import STATIC

    repo = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    shutil.copytree(
        repo / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "-w", str(tmp_path / "dist"), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("antlers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    page = {f"antlers/serve/static/{f.name}" for f in STATIC.iterdir()}
    assert {"antlers/serve/static/index.html", "antlers/serve/static/main.js"} <= page <= names
