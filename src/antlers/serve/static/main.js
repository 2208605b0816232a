// The page: one view at a time, every view's state in the address bar (?view=conv&k=...).
import { getJSON } from "./api.js";
import * as conv from "./conv.js";
import * as network from "./network.js";
import * as learned from "./learned.js";
import * as moose from "./moose.js";
import * as tasks from "./tasks.js";

const VIEWS = {
  conv: conv.render,
  network: network.render,
  learned: learned.render,
  moose: moose.render,
  segment: tasks.renderSegment,
  detect: tasks.renderDetect,
  generate: tasks.renderGenerate,
};

let runs = [];

// The view's state: read from the URL; set(patch) writes it back without a reload.
function makeState() {
  const params = new URLSearchParams(location.search);
  return {
    get: (key, fallback = null) => (params.has(key) ? params.get(key) : fallback),
    set(patch) {
      for (const [key, value] of Object.entries(patch)) {
        if (value === null || value === undefined) params.delete(key);
        else params.set(key, value);
      }
      history.replaceState(null, "", `?${params}`);
    },
  };
}

function show() {
  const state = makeState();
  const view = VIEWS[state.get("view")] ? state.get("view") : "conv";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  const root = document.getElementById("view");
  root.replaceChildren();
  root.dataset.view = view;
  VIEWS[view](root, { state, runs });
}

document.getElementById("nav").addEventListener("click", (event) => {
  const link = event.target.closest("a[data-view]");
  if (!link) return;
  event.preventDefault();
  history.pushState(null, "", `?view=${link.dataset.view}`);
  show();
});
window.addEventListener("popstate", show);

runs = await getJSON("/api/runs");
show();
