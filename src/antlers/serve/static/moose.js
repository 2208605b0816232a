// The moose detector: the classifier made fully convolutional, slid over a larger scene.
import { postImage } from "./api.js";
import { drawHeat, el, errorLine, guarded, imageInput, loadImage, runPicker } from "./ui.js";

export function render(root, { state, runs }) {
  const trained = runs.filter((r) => r.trained);
  const { select, chosen } = runPicker(trained, "classify", state.get("run"), (id) => {
    state.set({ run: id, cls: null });
    root.replaceChildren();
    render(root, { state, runs });
  });
  const error = errorLine();
  const out = el("div", { id: "slide" });
  root.append(el("h2", {}, "The moose detector"),
    el("p", { class: "muted" }, "A larger scene: every window the classifier would see, in one pass."),
    el("div", { class: "controls" }, el("label", {}, "run ", select)), error);
  if (!chosen) return;
  state.set({ run: chosen });
  const run = runs.find((r) => r.id === chosen);
  root.append(el("div", { class: "controls" }, imageInput(async (file) => {
    const result = await guarded(error, postImage(`/api/runs/${chosen}/slide`, file));
    if (result) show(out, result, run, state);
  }, "Upload a scene")), out);
}

async function show(box, result, run, state) {
  const pick = el("select", { id: "cls" }, ...result.classes.map((c, k) => el("option", { value: k }, c.label)));
  const best = result.classes.reduce((b, c, k) => (c.best > result.classes[b].best ? k : b), 0);
  pick.value = state.get("cls", String(best));
  const [h, w] = result.size;
  const scale = Math.min(4, 640 / Math.max(h, w));
  const canvas = el("canvas", { width: Math.round(w * scale), height: Math.round(h * scale), id: "heat" });
  const image = await loadImage(result.image);
  const caption = el("p", {});
  const draw = () => {
    const c = result.classes[Number(pick.value)] || result.classes[0];
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    const [rows, cols] = result.positions;
    const [sh, sw] = result.stride, [wh, ww] = result.window;
    // position (i, j) is the window whose top-left pixel is (i*sh, j*sw): shade its centre
    drawHeat(ctx, c.values, (ww / 2 - sw / 2) * scale, (wh / 2 - sh / 2) * scale, cols * sw * scale, rows * sh * scale, 0.5);
    const [x0, y0, x1, y1] = c.box;
    ctx.strokeStyle = "#22d3ee";
    ctx.lineWidth = 2;
    ctx.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    caption.textContent = `${c.label}: best ${c.best.toFixed(3)}; window ${ww}x${wh}, stride ${sw}x${sh}, ${rows}x${cols} positions${result.exact ? "" : " (padded backbone: approximate)"}`;
    state.set({ cls: pick.value });
  };
  pick.addEventListener("change", draw);
  box.replaceChildren(el("label", {}, "class ", pick), caption, canvas);
  draw();
}
