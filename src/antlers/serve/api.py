"""The HTTP API beneath the views (documented in README.md, "In the browser").

Runs are addressed by id (``GET /api/runs``), never by a path. Every answer is JSON; every
error is ``{"error": "..."}`` (see ``app.py``): 404 unknown run, 400 an image that cannot be
used (the CLI's reasons), 413 an upload over the limits, 422 bad parameters or a route that
does not fit the run's task. The routes are plain functions, which FastAPI runs in its thread
pool; each computation holds its model's lock (``runs.py``).

=============================  ====================================================
``GET /api/runs``              [{id, task, classes, model, input, trained}]
``POST /api/runs/{id}/predict`` ``image`` file -> ``antlers predict --json``'s object
``GET /api/runs/{id}/layers``   the layer table (``antlers summary``)
``POST /api/runs/{id}/explain`` probabilities, feature maps, Grad-CAM (classify)
``GET /api/runs/{id}/kernels``  first-layer kernels per saved epoch
``GET /api/runs/{id}/channels`` the layers with feature maps and their channels (classify)
``GET /api/runs/{id}/topk``     a channel's top test images (202 while computing; classify)
``POST /api/runs/{id}/slide``   the moose detector's heat maps (classify)
``POST /api/runs/{id}/segment`` mask overlay and legend (segment)
``POST /api/runs/{id}/detect``  the detector's stages (detect)
``POST /api/runs/{id}/sample``  samples and the denoising trajectory (generate)
``GET /api/conv/defaults``      the lecture's image and the named kernels
``POST /api/conv``              conv2d of a grid (JSON) -> the output grid
``POST /api/conv/photo``        the kernel over a bundled photo or an uploaded image
=============================  ====================================================
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, Field

from antlers.serve.runs import Runs
from antlers.serve.security import ApiError
from antlers.serve.topk import KEEP, TopKJobs
from antlers.serve.uploads import Limits, open_upload, predict_upload, read_upload

__all__ = ["ConvRequest", "SampleRequest", "make_router"]

Image = Annotated[UploadFile, File(description="an image file")]


class ConvRequest(BaseModel):
    """``POST /api/conv``: an image and a kernel as lists of rows, stride and padding."""

    image: list[list[float]]
    kernel: list[list[float]]
    stride: int = 1
    padding: int = 0


class SampleRequest(BaseModel):
    """``POST /api/runs/{id}/sample``: ``n`` samples of ``label`` (None: each class in turn)."""

    label: str | None = None
    guidance: float = 3.0
    steps: int = Field(default=20)
    seed: int = 0
    n: int = 8


def make_router(runs: Runs, limits: Limits, jobs: TopKJobs) -> APIRouter:
    """The API's routes over ``runs``, with uploads checked against ``limits``; ``jobs`` runs
    the top-image searches."""
    api = APIRouter(prefix="/api")

    def picture(image: UploadFile) -> Any:
        upload = read_upload(image.filename, image.file.read(), limits)
        return open_upload(upload, limits.max_pixels)

    _run_routes(api, runs, limits, picture)
    _view_routes(api, runs, picture)
    _learned_routes(api, runs, picture, jobs)
    _conv_routes(api, picture)
    return api


def _run_routes(api: APIRouter, runs: Runs, limits: Limits, picture: Any) -> None:
    """The runs, their predictions and their layer tables."""
    from antlers.serve import network

    @api.get("/runs")
    def list_runs() -> list[dict[str, Any]]:
        return [entry.info for entry in runs.entries.values()]

    @api.post("/runs/{run_id}/predict")
    def predict(run_id: str, image: Image, top: Annotated[int, Query(ge=1)] = 3) -> Any:
        loaded = runs.get(run_id)
        upload = read_upload(image.filename, image.file.read(), limits)
        if loaded.run.task.name == "generate":
            raise ApiError(422, f"{run_id} is a generate run: it samples (POST .../sample)")
        with loaded.lock:
            return predict_upload(loaded.run, upload, top=top)

    @api.get("/runs/{run_id}/layers")
    def layers(run_id: str) -> dict[str, Any]:
        entry, loaded = runs.entry(run_id), runs.get(run_id, trained=False)
        shape = entry.info["input"]
        with loaded.lock:
            return network.layer_table(
                loaded.model, (shape["channels"], shape["height"], shape["width"])
            )

    @api.post("/runs/{run_id}/explain")
    def explain(
        run_id: str,
        image: Image,
        target: Annotated[int | None, Form()] = None,
        layer: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        loaded = runs.get(run_id, "classify")
        shown = picture(image)
        with loaded.lock:
            return network.look_inside(loaded.run, shown, target, layer or None)


def _learned_routes(api: APIRouter, runs: Runs, picture: Any, jobs: TopKJobs) -> None:
    """What a classifier learned: kernels, top images per channel, the moose detector."""
    from antlers.serve import learned, topk

    @api.get("/runs/{run_id}/kernels")
    def kernels(run_id: str) -> dict[str, Any]:
        loaded = runs.get(run_id)
        with loaded.lock:
            return learned.kernels_view(loaded.run)

    @api.get("/runs/{run_id}/channels")
    def channels(run_id: str) -> list[dict[str, Any]]:
        loaded = runs.get(run_id, "classify")
        with loaded.lock:
            return topk.channels_view(loaded.run)

    @api.get("/runs/{run_id}/topk")
    def top_images(
        run_id: str,
        layer: str,
        channel: Annotated[int, Query(ge=0)],
        response: Response,
        k: Annotated[int, Query(ge=1, le=KEEP)] = 9,
    ) -> dict[str, Any]:
        found = jobs.answer(runs.get(run_id, "classify"), layer, channel, k)
        if found.get("pending"):
            response.status_code = 202
        return found

    @api.post("/runs/{run_id}/slide")
    def slide(run_id: str, image: Image) -> dict[str, Any]:
        loaded, shown = runs.get(run_id, "classify"), picture(image)
        with loaded.lock:
            return learned.slide_view(loaded.run, shown)


def _view_routes(api: APIRouter, runs: Runs, picture: Any) -> None:
    """The segment, detect and generate views."""
    from antlers.serve import task_views

    @api.post("/runs/{run_id}/segment")
    def segment(run_id: str, image: Image) -> dict[str, Any]:
        loaded, shown = runs.get(run_id, "segment"), picture(image)
        with loaded.lock:
            return task_views.segment_view(loaded.run, shown)

    @api.post("/runs/{run_id}/detect")
    def detect(run_id: str, image: Image) -> dict[str, Any]:
        loaded, shown = runs.get(run_id, "detect"), picture(image)
        with loaded.lock:
            return task_views.detect_view(loaded.run, shown)

    @api.post("/runs/{run_id}/sample")
    def sample(run_id: str, request: SampleRequest) -> dict[str, Any]:
        loaded = runs.get(run_id, "generate")
        r = request
        with loaded.lock:
            return task_views.sample_view(loaded.run, r.label, r.guidance, r.steps, r.seed, r.n)


def _conv_routes(api: APIRouter, picture: Any) -> None:
    """The convolution view: the lecture's grid and a photo."""
    from antlers.serve import convolution

    @api.get("/conv/defaults")
    def conv_defaults() -> dict[str, Any]:
        return convolution.lecture_defaults()

    @api.post("/conv")
    def conv(request: ConvRequest) -> dict[str, Any]:
        output = convolution.conv_grid(
            request.image, request.kernel, request.stride, request.padding
        )
        return {"output": output}

    @api.post("/conv/photo")
    def conv_photo(
        kernel: Annotated[str, Form()],
        image: Annotated[UploadFile | None, File()] = None,
        photo: Annotated[str, Form()] = "china",
        stride: Annotated[int, Form()] = 1,
        padding: Annotated[int, Form()] = 0,
    ) -> dict[str, Any]:
        try:
            rows = json.loads(kernel)
        except json.JSONDecodeError:
            raise ApiError(422, "kernel must be a JSON list of rows of numbers") from None
        source = picture(image) if image is not None else photo
        return convolution.conv_photo(source, rows, stride, padding)
