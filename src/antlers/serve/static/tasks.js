// The segment, detect and generate views: each task's own pictures of a run.
import { postImage, postJSON } from "./api.js";
import { el, errorLine, guarded, imageInput, loadImage, picture, runPicker } from "./ui.js";

// The frame every task view shares: a title, the run picker, the error line.
function frame(root, { state, runs }, task, title, again) {
  const { select, chosen } = runPicker(runs.filter((r) => r.trained), task, state.get("run"), (id) => {
    state.set({ run: id });
    root.replaceChildren();
    again(root, { state, runs });
  });
  const error = errorLine();
  root.append(el("h2", {}, title), el("div", { class: "controls" }, el("label", {}, "run ", select)), error);
  if (!chosen) root.append(el("p", { class: "muted" }, `No ${task} run: antlers train ${task} --data scenes`));
  else state.set({ run: chosen });
  return { chosen, error, run: runs.find((r) => r.id === chosen) };
}

export function renderSegment(root, context) {
  const { chosen, error } = frame(root, context, "segment", "Segment: a class for every pixel", renderSegment);
  if (!chosen) return;
  const out = el("div", { id: "segment" });
  root.append(imageInput(async (file) => {
    const result = await guarded(error, postImage(`/api/runs/${chosen}/segment`, file));
    if (!result) return;
    const legend = el("ul", { class: "legend" }, ...result.legend.map((l) => el("li", {},
      el("span", { class: "swatch", style: `background:${l.colour}` }), `${l.label} ${(100 * l.share).toFixed(1)}%`)));
    out.replaceChildren(el("div", { class: "row" }, picture(result.overlay, 384), legend));
  }), out);
}

const STAGES = ["candidates", "proposals", "classified", "detections"];

export function renderDetect(root, context) {
  const { state } = context;
  const { chosen, error } = frame(root, context, "detect", "Detect: proposals, classes, NMS", renderDetect);
  if (!chosen) return;
  const stage = el("select", { id: "stage" }, ...STAGES.map((s) => el("option", { value: s }, s)));
  stage.value = state.get("stage", "detections");
  const score = el("input", { type: "range", min: 0, max: 1, step: 0.05, id: "score", value: state.get("score", "0.5") });
  const caption = el("span", {});
  const canvas = el("canvas", { width: 384, height: 384, id: "boxes" });
  let result = null, image = null;
  const draw = () => {
    state.set({ stage: stage.value, score: score.value });
    caption.textContent = `score >= ${Number(score.value).toFixed(2)}`;
    if (!result) return;
    const ctx = canvas.getContext("2d"), k = canvas.width / result.size;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    ctx.font = "12px system-ui";
    const shown = result[stage.value].filter((d) => d.score >= Number(score.value));
    for (const d of shown) {
      const [x0, y0, x1, y1] = d.box.map((v) => v * k);
      ctx.strokeStyle = d.label === "nothing" ? "#9ca3af" : "#facc15";
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.fillStyle = ctx.strokeStyle;
      if (d.label) ctx.fillText(`${d.label} ${d.score.toFixed(2)}`, x0 + 2, y0 + 12);
    }
    caption.textContent += `: ${shown.length} of ${result[stage.value].length} boxes`;
  };
  stage.addEventListener("change", draw);
  score.addEventListener("input", draw);
  root.append(el("div", { class: "controls" }, imageInput(async (file) => {
    result = await guarded(error, postImage(`/api/runs/${chosen}/detect`, file));
    if (result) { image = await loadImage(result.image); draw(); }
  }), el("label", {}, "stage ", stage), el("label", {}, "score ", score), caption), canvas);
  draw();
}

export function renderGenerate(root, context) {
  const { state } = context;
  const { chosen, error, run } = frame(root, context, "generate", "Generate: from noise to digits", renderGenerate);
  if (!chosen) return;
  const label = el("select", { id: "label" }, el("option", { value: "" }, "each class in turn"),
    ...run.classes.map((c) => el("option", { value: c }, c)));
  label.value = state.get("label", "");
  const number = (id, value, min, max, step = 1) => el("input", { id, type: "number", min, max, step, value: state.get(id, value) });
  const guidance = number("guidance", "3", 0, 20, 0.5), steps = number("steps", "20", 1, 250);
  const seed = number("seed", "0", 0, 1e9), n = number("n", "8", 1, 16);
  const samples = el("div", { class: "samples", id: "samples" });
  const movie = el("div", { class: "samples", id: "trajectory" });
  const caption = el("p", { class: "muted" });
  let timer = null;
  async function go() {
    const request = { label: label.value || null, guidance: Number(guidance.value), steps: Number(steps.value), seed: Number(seed.value), n: Number(n.value) };
    state.set({ label: label.value || null, guidance: guidance.value, steps: steps.value, seed: seed.value, n: n.value });
    const result = await guarded(error, postJSON(`/api/runs/${chosen}/sample`, request));
    if (!result) return;
    samples.replaceChildren(...result.samples.map((src) => el("img", { src, alt: "sample" })));
    let k = 0;
    clearInterval(timer);
    timer = setInterval(() => {
      if (!movie.isConnected) return clearInterval(timer);
      const f = result.frames[k];
      movie.replaceChildren(...f.images.map((src) => el("img", { src, alt: `t=${f.t}` })));
      caption.textContent = `denoising: t = ${f.t} (${k + 1} of ${result.frames.length})`;
      k = (k + 1) % result.frames.length;
    }, 250);
  }
  root.append(el("div", { class: "controls" }, el("label", {}, "class ", label), el("label", {}, "guidance ", guidance),
    el("label", {}, "steps ", steps), el("label", {}, "seed ", seed), el("label", {}, "n ", n),
    el("button", { type: "button", id: "sample", onclick: go }, "Sample")),
  el("h3", {}, "samples"), samples, el("h3", {}, "the denoising trajectory"), caption, movie);
}
