// Small DOM helpers shared by the views.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// A number as the page shows it: integers as they are, others to 4 significant digits.
export function fmt(value) {
  if (Object.is(value, -0) || value === 0) return "0";
  if (Number.isInteger(value)) return String(value);
  return String(parseFloat(value.toPrecision(4)));
}

// A <select> of the runs of `task` (any task when null); calls onPick(id) on a change.
export function runPicker(runs, task, current, onPick) {
  const fitting = runs.filter((r) => task === null || r.task === task);
  const select = el("select", { id: "run", onchange: () => onPick(select.value) });
  for (const run of fitting) {
    const note = run.trained ? `${run.model}, ${run.classes.length} classes` : "untrained";
    select.append(el("option", { value: run.id }, `${run.id} (${note})`));
  }
  if (current && fitting.some((r) => r.id === current)) select.value = current;
  return { select, chosen: select.value || null, fitting };
}

// A file input for an image; calls onFile(file).
export function imageInput(onFile, label = "Upload an image") {
  const input = el("input", { type: "file", accept: "image/*", id: "upload" });
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  return el("label", {}, `${label}: `, input);
}

export const errorLine = () => el("p", { class: "error", role: "alert", id: "error" });

// Run `work` (a promise), showing its error in `line`; returns its result or null.
export async function guarded(line, work) {
  line.textContent = "";
  try {
    return await work;
  } catch (error) {
    line.textContent = error.message;
    return null;
  }
}

// An <img> from a data URL, shown pixelated at `width` CSS pixels.
export const picture = (src, width = 192, alt = "") =>
  el("img", { src, class: "pixel", style: `width:${width}px`, alt });

// Draw one channel of values in [0, 1] (rows) over a canvas, red with alpha = value.
export function drawHeat(ctx, values, x, y, w, h, alpha = 0.6) {
  const rows = values.length, cols = values[0].length;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = values[i][j];
      ctx.fillStyle = `rgba(${Math.round(255 * v)}, ${Math.round(80 * (1 - v))}, 0, ${alpha * v})`;
      ctx.fillRect(x + (j * w) / cols, y + (i * h) / rows, w / cols + 0.5, h / rows + 0.5);
    }
  }
}

// Load a data URL into an Image, resolved when decoded.
export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the picture could not be shown"));
    image.src = src;
  });
}
