// The HTTP API as promises: every error of the server arrives as {"error": "..."}.

async function answer(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

export const getJSON = (url) => fetch(url).then(answer);

export const postJSON = (url, body) =>
  fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }).then(answer);

// POST a file (a File or Blob) as the multipart field "image", with extra form fields.
export function postImage(url, file, fields = {}) {
  const form = new FormData();
  if (file) form.append("image", file, file.name || "drawing.png");
  for (const [key, value] of Object.entries(fields)) {
    if (value !== null && value !== undefined && value !== "") form.append(key, value);
  }
  return fetch(url, { method: "POST", body: form }).then(answer);
}
