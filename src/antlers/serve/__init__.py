"""``antlers serve``: the lecture and the user's own runs, live in a local browser page.

* ``app.py``: ``create_app(ServeConfig(...))``, the FastAPI application and its error policy;
* ``api.py``: the HTTP API (runs by id, predict, and one route per view);
* ``security.py``: the Host check against DNS rebinding and the upload limits;
* ``runs.py``: the runs served, listed from their metadata and loaded on first use;
* ``uploads.py``: uploaded images, read by the CLI's own code;
* ``convolution.py``, ``network.py``, ``learned.py``, ``task_views.py``: each view's numbers,
  from ``antlers.conv``, ``antlers.anatomy``, ``antlers.explain`` and the tasks;
* ``server.py``: the uvicorn server on a socket bound first (``antlers serve``, the tests);
* ``static/``: the page, plain ES modules with SVG and Canvas, no build step, no network.

Nothing is imported here: ``from antlers.serve.app import create_app``.
"""
