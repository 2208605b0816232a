// The network view: the layer table beside a diagram; an uploaded or drawn image through the
// network: every layer's feature maps, the softmax probabilities, Grad-CAM over the image.
import { getJSON, postImage } from "./api.js";
import { drawHeat, el, errorLine, guarded, imageInput, loadImage, runPicker, svg } from "./ui.js";

export async function render(root, { state, runs }) {
  const preferred = runs.find((r) => r.task === "classify" && r.trained);
  const { select, chosen } = runPicker(runs, "classify", state.get("run", preferred?.id), (id) => {
    state.set({ run: id, cls: null, layer: null });
    root.replaceChildren();
    render(root, { state, runs });
  });
  const error = errorLine();
  root.append(el("h2", {}, "The network"), el("div", { class: "controls" }, el("label", {}, "run ", select)), error);
  if (!chosen) return;
  state.set({ run: chosen });
  const run = runs.find((r) => r.id === chosen);
  const table = await guarded(error, getJSON(`/api/runs/${chosen}/layers`));
  if (table) root.append(el("div", { class: "row" }, layerTable(table), diagram(table)));
  if (!run.trained) {
    root.append(el("p", { class: "muted" }, "An untrained lecture network: its arithmetic only. Train a run to look inside."));
    return;
  }
  const inside = el("div", { id: "inside" });
  const pad = drawingPad((blob) => look(blob));
  let last = null;
  async function look(file) {
    last = file;
    const fields = { target: state.get("cls"), layer: state.get("layer") };
    const result = await guarded(error, postImage(`/api/runs/${chosen}/explain`, file, fields));
    if (result) showInside(inside, result, run, state, () => last && look(last));
  }
  root.append(el("h3", {}, "Look inside"), el("div", { class: "controls" }, imageInput(look), pad), inside);
}

function layerTable(table) {
  const head = ["layer", "type", "output shape", "parameters", "formula", "receptive field"];
  return el("table", { class: "layers", id: "layers" },
    el("caption", {}, table.footer),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...table.rows.map((r) => el("tr", {},
      el("td", {}, r.name), el("td", {}, r.type), el("td", {}, r.output_shape.join("x")),
      el("td", {}, r.params.toLocaleString("en")), el("td", {}, r.formula || "-"),
      el("td", {}, r.rf === null ? "-" : `${r.rf} (jump ${r.jump})`)))));
}

// One box per layer with a map output: height by its side, width by its channels (log scale).
function diagram(table) {
  const maps = [{ name: "input", output_shape: table.input }, ...table.rows.filter((r) => r.output_shape.length === 3)];
  const height = 200, gap = 16;
  let x = 4;
  const picture = svg("svg", { width: maps.length * 70 + 10, height: height + 40, id: "diagram" });
  for (const m of maps) {
    const [c, h] = m.output_shape;
    const boxH = Math.max(8, (height * Math.sqrt(h)) / Math.sqrt(table.input[1]));
    const boxW = 8 + 10 * Math.log2(1 + c);
    picture.append(svg("rect", { x, y: (height - boxH) / 2, width: boxW, height: boxH, fill: "#fed7aa", stroke: "#c2410c" }),
      svg("text", { x, y: height + 14, "font-size": 10 }, m.name),
      svg("text", { x, y: height + 28, "font-size": 10 }, m.output_shape.join("x")));
    x += Math.max(boxW, 54) + gap;
  }
  picture.setAttribute("width", x);
  return picture;
}

// A canvas to draw on (white on black, as digits), sent as a PNG.
function drawingPad(onDone) {
  const canvas = el("canvas", { width: 112, height: 112, id: "pad", title: "draw here" });
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, 112, 112); };
  clear();
  let down = false;
  canvas.addEventListener("pointerdown", () => { down = true; });
  canvas.addEventListener("pointerup", () => { down = false; canvas.toBlob((b) => onDone(b), "image/png"); });
  canvas.addEventListener("pointermove", (e) => {
    if (!down) return;
    ctx.fillStyle = "#fff";
    ctx.beginPath();
    ctx.arc(e.offsetX, e.offsetY, 7, 0, 2 * Math.PI);
    ctx.fill();
  });
  return el("span", {}, "or draw: ", canvas, el("button", { type: "button", onclick: clear }, "clear"));
}

async function showInside(box, result, run, state, again) {
  const probs = el("ol", { class: "probs", id: "probs" }, ...result.probabilities.map((p) =>
    el("li", { "data-label": p.label, "data-probability": String(p.probability) },
      el("span", { class: "label" }, p.label),
      el("span", { class: "bar", style: `width:${Math.round(120 * p.probability)}px` }),
      el("span", { class: "value" }, p.probability.toFixed(4)))));
  const classPick = el("select", { id: "cls" }, el("option", { value: "" }, "the predicted class"),
    ...run.classes.map((c, k) => el("option", { value: k }, c)));
  classPick.value = state.get("cls", "");
  classPick.addEventListener("change", () => { state.set({ cls: classPick.value || null }); again(); });
  const canvas = el("canvas", { width: 224, height: 224, id: "cam", class: "pixel" });
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(await loadImage(result.input), 0, 0, 224, 224);
  drawHeat(ctx, result.cam.values, 0, 0, 224, 224, 0.55);
  const maps = el("div", { class: "maps", id: "maps" }, ...result.maps.map((m) =>
    el("div", { class: "layer" }, el("strong", {}, `${m.layer} ${m.shape.join("x")} `),
      ...m.channels.map((src) => el("img", { src, alt: m.layer })))));
  box.replaceChildren(el("div", { class: "row" },
    el("div", {}, el("h3", {}, "probabilities"), probs),
    el("div", {}, el("h3", {}, `Grad-CAM at ${result.cam.layer}: ${result.cam.label}`), canvas,
      el("p", {}, el("label", {}, "explain ", classPick)))),
  el("h3", {}, "feature maps (first 16 channels of each layer)"), maps);
}
