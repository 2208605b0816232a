// What it learned: the first layer's kernels, with a slider over the epochs the run saved;
// then, for a chosen layer and channel, the test images that excite it most, each with the
// receptive field of its strongest position drawn and cut out (computed once, with progress).
import { getJSON } from "./api.js";
import { el, errorLine, fmt, guarded, loadImage, picture, runPicker } from "./ui.js";

export async function render(root, { state, runs }) {
  const trained = runs.filter((r) => r.trained && r.task !== "generate");
  const { select, chosen } = runPicker(trained, null, state.get("run"), (id) => {
    state.set({ run: id, epoch: null, layer: null, channel: null });
    root.replaceChildren();
    render(root, { state, runs });
  });
  const error = errorLine();
  root.append(el("h2", {}, "What it learned"), el("div", { class: "controls" }, el("label", {}, "run ", select)), error);
  if (!chosen) {
    root.append(el("p", { class: "muted" }, "No trained run: antlers train classify --data digits"));
    return;
  }
  state.set({ run: chosen });
  const kernels = await guarded(error, getJSON(`/api/runs/${chosen}/kernels`));
  if (!kernels) return;
  const frames = [...kernels.epochs.map((e) => ({ label: `epoch ${e.epoch}`, grid: e.grid })),
    { label: "the weights served", grid: kernels.final }];
  const slider = el("input", { type: "range", min: 0, max: frames.length - 1, id: "epoch" });
  const wanted = Number(state.get("epoch", frames.length - 1));
  slider.value = Math.min(Math.max(0, wanted), frames.length - 1);
  const caption = el("p", { id: "epoch-label" });
  const shown = el("div", {});
  const show = () => {
    const frame = frames[Number(slider.value)];
    shown.replaceChildren(picture(frame.grid, 480, frame.label));
    caption.textContent = `${kernels.layer}: ${kernels.shape.join("x")} kernels, ${frame.label}`;
    state.set({ epoch: slider.value });
  };
  slider.addEventListener("input", show);
  root.append(el("div", { class: "controls" }, el("label", {}, "epoch ", slider)), caption, shown);
  show();
  if (trained.find((r) => r.id === chosen)?.task === "classify") {
    await renderTop(root, chosen, state, error);
  } else {  // the search ranks a classifier's test images; other tasks show their kernels only
    root.append(el("p", { class: "muted" }, "Top images per channel: for classify runs."));
  }
}

// The layer and channel pickers, and the top images once the server has them.
async function renderTop(root, run, state, error) {
  const layers = await guarded(error, getJSON(`/api/runs/${run}/channels`));
  if (!layers || !layers.length) return;
  const layerSelect = el("select", { id: "layer" });
  for (const l of layers) layerSelect.append(el("option", { value: l.layer }, `${l.layer} (${l.channels} channels)`));
  if (layers.some((l) => l.layer === state.get("layer"))) layerSelect.value = state.get("layer");
  const channel = el("input", { type: "number", id: "channel", min: 0, value: state.get("channel", 0) });
  const progress = el("progress", { id: "topk-progress", max: 1, value: 0 });
  progress.hidden = true;
  const note = el("p", { id: "topk-note", class: "muted" });
  const gallery = el("div", { id: "topk", class: "gallery" });
  const find = () => findTop(run, layerSelect.value, Number(channel.value), { state, error, progress, note, gallery });
  root.append(
    el("h3", {}, "What a channel looks for"),
    el("div", { class: "controls" }, el("label", {}, "layer ", layerSelect), el("label", {}, "channel ", channel),
      el("button", { id: "find", onclick: find }, "Show its top test images")),
    progress, note, gallery);
  if (state.get("layer") !== null) await find();
}

// Ask until the answer is there (HTTP 202 means: still searching, here is how far).
async function findTop(run, layer, channel, { state, error, progress, note, gallery }) {
  state.set({ layer, channel });
  const url = `/api/runs/${run}/topk?layer=${encodeURIComponent(layer)}&channel=${channel}&k=9`;
  gallery.replaceChildren();
  for (;;) {
    const found = await guarded(error, getJSON(url));
    if (!found) break;
    if (!found.pending) {
      note.textContent = `${layer}, channel ${channel}: the ${found.images.length} test images it responds to most; the box is what its strongest unit sees`;
      await showTop(gallery, found.images);
      break;
    }
    progress.hidden = false;
    progress.max = found.total || 1;
    progress.value = found.done;
    note.textContent = found.total ? `searching the test images: ${found.done} of ${found.total}` : "reading the test images";
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  progress.hidden = true;
}

async function showTop(gallery, images) {
  for (const item of images) {
    const image = await loadImage(item.image);
    const scale = Math.max(1, Math.floor(96 / image.width));
    const canvas = el("canvas", { width: image.width * scale, height: image.height * scale, class: "pixel" });
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const [y0, y1, x0, x1] = item.window;
    ctx.strokeStyle = "#ff2d55";
    ctx.lineWidth = 2;
    ctx.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    const caption = el("figcaption", {}, `${item.label}: ${fmt(item.value)}`);
    gallery.append(el("figure", { class: "top", "data-index": item.index }, canvas, picture(item.patch, 48, "receptive field"), caption));
  }
}
