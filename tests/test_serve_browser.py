"""``antlers serve`` in a real browser: Playwright driving the distribution's Chromium (no
browser download: the machines are offline), one browser for the module, the server in a
background thread on a free loopback port.

Set ``ANTLERS_SCREENSHOTS=docs/images`` to keep the two screenshots README shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from antlers.conv import conv2d, get_kernel, lecture_image
from antlers.serve.app import ServeConfig, create_app
from antlers.serve.server import running

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent
VIEWS = ("conv", "network", "learned", "moose", "segment", "detect", "generate")


@pytest.fixture(scope="module")
def url(classify_run: Any, segment_run: Any, detect_run: Any, generate_run: Any) -> Iterator[str]:
    runs = classify_run.path.parent.parent
    app = create_app(ServeConfig(runs=(str(runs),), max_upload_mb=0.05))
    with running(app) as address:
        yield address


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the console errors it logs (page errors included)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab, errors
    context.close()


def output_grid(tab: Page) -> np.ndarray:
    """The Convolution view's output as displayed: each cell's exact value (data-value)."""
    cells = tab.locator("svg.out g.cell")
    values = {
        (int(c.get_attribute("data-i")), int(c.get_attribute("data-j"))): float(
            c.get_attribute("data-value")
        )
        for c in cells.all()
    }
    rows, cols = max(i for i, _ in values) + 1, max(j for _, j in values) + 1
    return np.array([[values[i, j] for j in range(cols)] for i in range(rows)])


def wait_for_grid(tab: Page, expected: np.ndarray) -> np.ndarray:
    """The displayed grid once it has ``expected``'s shape and first value (or after 10 s)."""
    first = repr(float(expected[0, 0]))
    selector = f'svg.out g.cell[data-i="{expected.shape[0] - 1}"][data-j="{expected.shape[1] - 1}"]'
    tab.wait_for_selector(selector)
    tab.wait_for_function(
        "v => document.querySelector('svg.out g.cell').dataset.value === v",
        arg=first.removesuffix(".0"),
        timeout=10_000,
    )
    return output_grid(tab)


def test_editing_a_cell_shows_numpy_conv2d(url: str, page: tuple[Page, list[str]]) -> None:
    tab, errors = page
    tab.goto(url + "?view=conv")
    tab.wait_for_selector("svg.out g.cell")
    x, w = lecture_image(), get_kernel("vertical_line")
    np.testing.assert_array_equal(output_grid(tab), conv2d(x, w))
    tab.fill('#kernel input[data-r="0"][data-c="0"]', "0.3")
    tab.fill('#image input[data-r="0"][data-c="0"]', "-1.7")
    w[0, 0], x[0, 0] = 0.3, -1.7
    expected = conv2d(x, w)
    np.testing.assert_array_equal(wait_for_grid(tab, expected), expected)  # exactly, as float64
    tab.hover('svg.out g.cell[data-i="0"][data-j="0"]')
    terms = tab.locator("#terms").inner_text()
    assert terms.startswith("out[0, 0] = (0.3)(-1.7) + (2)(0) + (-1)(0)")
    assert terms.endswith(f"= {float(f'{expected[0, 0]:.4g}'):g}")
    assert "k=custom" in tab.url
    assert not errors


def test_uploading_an_image_shows_run_predicts_top1(
    url: str, page: tuple[Page, list[str]], classify_run: Any, tmp_path: Path
) -> None:
    from antlers import Run

    picture = Image.fromarray(np.kron(np.eye(4, dtype=np.uint8) * 255, np.ones((4, 4), np.uint8)))
    picture.save(tmp_path / "diagonal.png")
    (best,) = Run.load(classify_run.path).predict([picture]).top(1)
    tab, errors = page
    tab.goto(url + "?view=network&run=classify-run")
    tab.set_input_files("#upload", str(tmp_path / "diagonal.png"))
    first = tab.locator("#probs li").first
    first.wait_for()
    assert first.get_attribute("data-label") == best[0][0]
    assert first.locator(".value").inner_text() == f"{best[0][1]:.4f}"
    tab.wait_for_selector("#maps img")
    assert tab.locator("#layers tbody tr").count() == 9
    assert not errors


def upload_png(tmp_path: Path, name: str, size: tuple[int, int], channels: str = "L") -> str:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (*size, 3) if channels == "RGB" else size, dtype=np.uint8)
    path = tmp_path / name
    Image.fromarray(pixels).save(path)
    return str(path)


def test_each_view_renders_without_console_errors(
    url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    for view in VIEWS:
        tab.goto(f"{url}?view={view}")
        tab.wait_for_selector(f'#view[data-view="{view}"] h2')
        tab.wait_for_load_state("networkidle")
        assert tab.locator("#error").inner_text() == "", view
    scene = upload_png(tmp_path, "scene.png", (40, 64))
    colour = upload_png(tmp_path, "colour.png", (64, 64), "RGB")
    for view, file, shown in [
        ("moose", scene, "#heat"),
        ("segment", colour, "#segment img"),
        ("detect", colour, "#boxes"),
    ]:
        tab.goto(f"{url}?view={view}")
        tab.set_input_files("#upload", file)
        tab.wait_for_selector(shown)
    tab.goto(f"{url}?view=conv&mode=photo&k=sobel_x")
    tab.wait_for_selector("#photo img")
    tab.goto(f"{url}?view=generate&steps=3&n=2")
    tab.click("#sample")
    tab.wait_for_selector("#samples img")
    tab.goto(f"{url}?view=learned")
    tab.wait_for_selector("#epoch-label")
    tab.wait_for_load_state("networkidle")
    assert not errors


def test_an_oversize_upload_shows_its_message(
    url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    tab, errors = page
    tab.goto(url + "?view=network&run=classify-run")
    tab.set_input_files("#upload", upload_png(tmp_path, "big.png", (300, 300)))
    tab.wait_for_function("document.querySelector('#error').textContent !== ''")
    assert "over the limit of 0.05 MB" in tab.locator("#error").inner_text()
    assert all("413" in e for e in errors)  # only the browser's note of the refused request


def test_the_url_restores_a_view(url: str, page: tuple[Page, list[str]]) -> None:
    tab, errors = page
    tab.goto(url + "?view=conv&k=sobel_x&s=2&p=1")
    expected = conv2d(lecture_image(), get_kernel("sobel_x"), stride=2, padding=1)
    np.testing.assert_array_equal(wait_for_grid(tab, expected), expected)
    assert tab.locator("#kernel-name").input_value() == "sobel_x"
    assert tab.locator("#stride").input_value() == "2"
    tab.goto(url + "?view=learned&run=classify-run&epoch=0")
    tab.wait_for_selector("#epoch-label")
    assert tab.locator("#epoch").input_value() == "0"
    assert tab.locator('nav a[data-view="learned"]').get_attribute("class") == "active"
    assert not errors


def test_a_channels_top_images_appear_with_their_receptive_fields(
    url: str, page: tuple[Page, list[str]], classify_run: Any
) -> None:
    """The URL names a layer and channel: the view searches (progress), then shows 9 images,
    the first the one the API ranks first."""
    import httpx

    tab, errors = page
    api = url.rstrip("/") + "/api/runs/classify-run"
    layer = httpx.get(f"{api}/channels").json()[0]["layer"]
    tab.goto(f"{url}?view=learned&run=classify-run&layer={layer}&channel=1")
    tab.wait_for_selector("#topk figure.top >> nth=8", timeout=60_000)
    answer = httpx.get(f"{api}/topk?layer={layer}&channel=1&k=9").json()
    shown = tab.locator("#topk figure.top").first.get_attribute("data-index")
    assert shown == str(answer["images"][0]["index"])
    assert tab.locator("#channel").input_value() == "1"
    assert not errors


def test_screenshots_of_the_two_main_views(
    url: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    """The pictures README shows (kept with ANTLERS_SCREENSHOTS=docs/images)."""
    tab, errors = page
    tab.goto(url + "?view=conv")
    tab.wait_for_selector("svg.out g.cell")
    tab.hover('svg.out g.cell[data-i="1"][data-j="2"]')
    tab.screenshot(path=tmp_path / "serve_convolution.png")
    tab.goto(url + "?view=network&run=classify-run")
    picture = Image.new("L", (16, 16))
    picture.paste(255, (6, 2, 10, 14))
    picture.save(tmp_path / "one.png")
    tab.set_input_files("#upload", str(tmp_path / "one.png"))
    tab.wait_for_selector("#maps img")
    tab.screenshot(path=tmp_path / "serve_network.png", full_page=True)
    for name in ("serve_convolution.png", "serve_network.png"):
        with Image.open(tmp_path / name) as shot:
            assert shot.width == 1200
            assert np.asarray(shot.convert("L")).std() > 10
        if keep := os.environ.get("ANTLERS_SCREENSHOTS"):  # relative to the repository
            shutil.copy(tmp_path / name, REPO / keep / name)
    assert not errors
