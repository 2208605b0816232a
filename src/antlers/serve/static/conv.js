// The Convolution view: edit the image or the kernel, watch conv2d's output (NumPy, on the
// server: antlers.conv.conv2d); hover an output cell to see its dot product term by term.
import { getJSON, postImage, postJSON } from "./api.js";
import { el, errorLine, fmt, guarded, imageInput, picture, svg } from "./ui.js";

const encode = (rows) => rows.map((r) => r.join(",")).join(";");
const decode = (text) => text.split(";").map((r) => r.split(",").map(Number));
const CELL = 46;

let defaults = null;

export async function render(root, { state }) {
  defaults = defaults || (await getJSON("/api/conv/defaults"));
  const image = state.get("img") ? decode(state.get("img")) : defaults.image;
  let name = state.get("k", defaults.default);
  let kernel = name in defaults.kernels ? defaults.kernels[name] : decode(state.get("kc", ""));
  if (!(name in defaults.kernels) && kernel.flat().some(Number.isNaN)) {
    name = defaults.default;
    kernel = defaults.kernels[name];
  }
  const error = errorLine();
  const mode = state.get("mode", "grid");

  const kernelSelect = el("select", { id: "kernel-name" });
  for (const k of [...Object.keys(defaults.kernels), "custom"]) {
    kernelSelect.append(el("option", { value: k }, k));
  }
  kernelSelect.value = name in defaults.kernels ? name : "custom";
  const stride = el("input", { id: "stride", type: "number", min: 1, max: 8, value: state.get("s", "1") });
  const padding = el("input", { id: "padding", type: "number", min: 0, max: 8, value: state.get("p", "0") });
  const modeSelect = el("select", { id: "mode" }, el("option", { value: "grid" }, "the lecture's grid"),
    el("option", { value: "photo" }, "a photo"));
  modeSelect.value = mode;

  const imageGrid = gridTable("image", image);
  const kernelGrid = gridTable("kernel", kernel, name in defaults.kernels ? fmt : String);
  const output = el("div", { id: "output" });
  const terms = el("p", { class: "terms", id: "terms" }, "Hover an output cell to see its sum.");
  const photo = el("div", { id: "photo" });

  const read = (table) => [...table.querySelectorAll("tr")].map((tr) =>
    [...tr.querySelectorAll("input")].map((i) => (i.value.trim() === "" ? NaN : Number(i.value))));

  let latest = 0; // answers can arrive out of order: only the latest request's is drawn
  async function update() {
    const mine = ++latest;
    const named = kernelSelect.value !== "custom";
    const x = read(imageGrid), w = named ? defaults.kernels[kernelSelect.value] : read(kernelGrid);
    const s = Number(stride.value), p = Number(padding.value);
    state.set({ mode: modeSelect.value, img: encode(x), k: kernelSelect.value, kc: named ? null : encode(w), s, p });
    if ([...x.flat(), ...w.flat()].some(Number.isNaN)) {
      error.textContent = "every cell needs a number";
      return;
    }
    if (modeSelect.value === "photo") return updatePhoto(w, s, p);
    const result = await guarded(error, postJSON("/api/conv", { image: x, kernel: w, stride: s, padding: p }));
    if (result && mine === latest) drawOutput(output, terms, imageGrid, x, w, s, p, result.output);
  }

  let upload = null;
  async function updatePhoto(w, s, p) {
    const fields = { kernel: JSON.stringify(w), stride: s, padding: p, photo: "china" };
    const result = await guarded(error, postImage("/api/conv/photo", upload, fields));
    if (result) {
      photo.replaceChildren(el("div", { class: "row" },
        el("figure", {}, picture(result.input, 320), el("figcaption", {}, "input (grey)")),
        el("figure", {}, picture(result.output, 320),
          el("figcaption", {}, `output ${result.shape.join("x")}, scaled to its range`))));
    }
  }

  kernelSelect.addEventListener("change", () => {
    if (kernelSelect.value !== "custom") fillGrid(kernelGrid, defaults.kernels[kernelSelect.value], fmt);
    update();
  });
  kernelGrid.addEventListener("input", () => { kernelSelect.value = "custom"; update(); });
  imageGrid.addEventListener("input", update);
  for (const control of [stride, padding]) control.addEventListener("input", update);
  modeSelect.addEventListener("change", () => { root.replaceChildren(); state.set({ mode: modeSelect.value }); render(root, { state }); });

  const controls = el("div", { class: "controls" },
    el("label", {}, "mode ", modeSelect), el("label", {}, "kernel ", kernelSelect),
    el("label", {}, "stride ", stride), el("label", {}, "padding ", padding));
  const kernelBox = el("div", {}, el("h3", {}, "kernel"), kernelGrid);
  if (mode === "photo") {
    controls.append(imageInput((file) => { upload = file; update(); }, "or your own photo"));
    root.append(el("h2", {}, "Convolution over a photo"), controls, error, el("div", { class: "row" }, kernelBox), photo);
  } else {
    root.append(el("h2", {}, "Convolution: slide the kernel, sum the products"), controls, error,
      el("div", { class: "row" }, el("div", {}, el("h3", {}, "image"), imageGrid), kernelBox,
        el("div", {}, el("h3", {}, "output"), output)), terms);
  }
  await update();
}

function gridTable(id, rows, show = String) {
  const table = el("table", { class: "grid", id });
  fillGrid(table, rows, show);
  return table;
}

// The cells of `rows` as inputs; `show` writes each number (named kernels: rounded, exact
// values are sent from the defaults).
function fillGrid(table, rows, show = String) {
  table.replaceChildren(...rows.map((row, i) => el("tr", {}, ...row.map((v, j) =>
    el("td", {}, el("input", { value: show(v), inputmode: "decimal", "data-r": i, "data-c": j,
      "aria-label": `${table.id} row ${i} column ${j}` }))))));
}

function drawOutput(box, terms, imageGrid, x, w, s, p, out) {
  const rows = out.length, cols = rows ? out[0].length : 0;
  const picture = svg("svg", { class: "out", width: cols * CELL + 2, height: rows * CELL + 2 });
  out.forEach((row, i) => row.forEach((value, j) => {
    const cell = svg("g", { class: "cell", "data-i": i, "data-j": j, "data-value": String(value) },
      svg("rect", { x: j * CELL + 1, y: i * CELL + 1, width: CELL, height: CELL }),
      svg("text", { x: j * CELL + CELL / 2 + 1, y: i * CELL + CELL / 2 + 6, "text-anchor": "middle" }, fmt(value)));
    cell.addEventListener("mouseenter", () => explain(terms, imageGrid, x, w, s, p, i, j, value));
    picture.append(cell);
  }));
  box.replaceChildren(picture, el("p", { class: "muted" }, `${rows}x${cols}`));
}

// Highlight output (i, j)'s window in the image and write its dot product out.
function explain(terms, imageGrid, x, w, s, p, i, j, value) {
  const parts = [];
  for (const input of imageGrid.querySelectorAll("input")) input.classList.remove("window");
  w.forEach((row, u) => row.forEach((k, v) => {
    const r = i * s + u - p, c = j * s + v - p;
    const inside = r >= 0 && r < x.length && c >= 0 && c < x[0].length;
    if (inside) imageGrid.querySelector(`input[data-r="${r}"][data-c="${c}"]`).classList.add("window");
    parts.push(`(${fmt(k)})(${fmt(inside ? x[r][c] : 0)})`);
  }));
  terms.textContent = `out[${i}, ${j}] = ${parts.join(" + ")} = ${fmt(value)}`;
}
