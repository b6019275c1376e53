// latsep's web page: plain JavaScript, no dependencies, nothing fetched from outside this API.
// Flow: GET /methods -> the form; POST /separate -> follow GET /jobs/{id}/events (read with
// fetch, so an API key can ride in the Authorization header, which EventSource cannot send)
// -> per stem an audio player, a spectrogram drawn here from the decoded audio, downloads.
"use strict";

const KEY_STORAGE = "latsep.apiKey";
const TERMINAL = ["finished", "failed", "canceled"];
const ADVANCED = ["num_candidates", "search", "temperature", "top_k", "likelihood_weight", "seed"];

const state = { key: sessionStorage.getItem(KEY_STORAGE) || "", methods: [], file: null, jobId: null, urls: [] };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askForKey(state.key ? "That key was refused; enter a valid one." : "");
    throw new ApiError(401, "an API key is needed");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      message = (body.error && body.error.message) || message;
    } catch (e) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function show(id, visible = true) { $(id).hidden = !visible; }
function fail(id, message) { const p = $(id); p.textContent = message; p.hidden = !message; }
function setState(name) { document.body.dataset.state = name; }

// --- the API key ---------------------------------------------------------------------------

function askForKey(message) {
  show("key-panel");
  show("separate-form", false);
  fail("key-error", message);
  $("api-key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  loadMethods();
});

// --- methods and sources -------------------------------------------------------------------

async function loadMethods() {
  let body;
  try {
    body = await (await api("/methods")).json();
  } catch (error) {
    if (error.status !== 401) fail("load-error", `Cannot reach the service: ${error.message}`);
    return;
  }
  show("key-panel", false);
  fail("load-error", "");
  show("separate-form");
  const before = state.methods.map((m) => m.name).join();
  state.methods = body.methods;
  if (state.methods.map((m) => m.name).join() !== before || !$("methods").children.length) renderMethods();
  setState(state.methods.length ? "ready" : "no-worker");
  // Workers load their models for a while after `latsep serve` starts: look again.
  if (!state.methods.length) setTimeout(loadMethods, 3000);
}

function renderMethods() {
  const box = $("methods");
  box.replaceChildren();
  show("no-worker", state.methods.length === 0);
  const recommended = state.methods.find((m) => m.recommended);
  const initial = recommended ? recommended.name : (state.methods[0] || {}).name;
  for (const method of state.methods) {
    const input = el("input", { type: "radio", name: "method", value: method.name });
    input.checked = method.name === initial;
    input.addEventListener("change", renderSources);
    const title = el("div", {}, el("span", { class: "name", text: method.name }));
    if (method.recommended) title.append(el("span", { class: "badge", text: "recommended" }));
    const about = method.about || `Separates up to ${method.max_sources} sources.`;
    box.append(el("label", { class: "method" }, input, el("div", {}, title, el("div", { class: "what", text: about }))));
  }
  renderSources();
}

function chosenMethod() {
  const checked = document.querySelector("input[name=method]:checked");
  return state.methods.find((m) => checked && m.name === checked.value);
}

function chosenSources() {
  return [...document.querySelectorAll("#sources input:checked")].map((i) => i.value);
}

function renderSources() {
  const method = chosenMethod();
  const box = $("sources");
  box.replaceChildren();
  if (!method) return validate();
  const wanted = (method.defaults && method.defaults.sources) || method.sources.slice(0, 2);
  for (const source of method.sources) {
    const input = el("input", { type: "checkbox", value: source });
    input.checked = wanted.includes(source);
    input.addEventListener("change", () => { renderReferences(); validate(); });
    box.append(el("label", {}, input, source));
  }
  const most = Math.min(method.max_sources, method.sources.length);
  $("sources-hint").textContent = most <= 2 ? "Choose 2 sources." : `Choose 2 to ${most} sources.`;
  for (const search of ["beam", "smc", "mixed"]) {
    $("search").querySelector(`option[value=${search}]`).disabled = !method.searches.includes(search);
  }
  renderReferences();
  validate();
}

function renderReferences() {
  const box = $("references");
  const kept = new Map([...box.querySelectorAll("label")].map((l) => [l.dataset.source, l]));
  box.replaceChildren(); // a reference already chosen stays while its source does
  for (const source of chosenSources()) {
    box.append(kept.get(source) || el("label", { "data-source": source }, `true ${source} stem`,
      el("input", { type: "file", accept: "audio/*", "data-source": source })));
  }
}

function defaultsFor(method, count) {
  return (method.defaults_by_sources && method.defaults_by_sources[String(count)]) || method.defaults || {};
}

function validate() {
  const method = chosenMethod();
  const count = chosenSources().length;
  let ok = Boolean(method && state.file);
  if (method) {
    const most = Math.min(method.max_sources, method.sources.length);
    ok = ok && count >= 2 && count <= most;
    const defaults = defaultsFor(method, count);
    for (const name of ["num_candidates", "temperature", "top_k", "likelihood_weight"]) {
      const value = defaults[name];
      $(name).placeholder = value === null || value === undefined ? "none" : String(value);
    }
    $("search").options[0].textContent = `default (${defaults.search || "sample"})`;
  }
  $("submit").disabled = !ok;
}

// --- the file: drop or choose --------------------------------------------------------------

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("drop-text").textContent = `${file.name} (${(file.size / 1e6).toFixed(2)} MB) — drop another to replace`;
  $("drop-zone").classList.add("chosen");
  validate();
}

const zone = $("drop-zone");
$("file").addEventListener("change", () => chooseFile($("file").files[0]));
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  chooseFile(event.dataTransfer.files[0]);
});
// A file dropped anywhere else on the page is the mix too (the browser must not leave the
// page to open it), except on a reference stem's own file input.
const onFileInput = (event) => event.target instanceof HTMLInputElement && event.target.type === "file";
window.addEventListener("dragover", (event) => { if (!onFileInput(event)) event.preventDefault(); });
window.addEventListener("drop", (event) => {
  if (onFileInput(event) || zone.contains(event.target)) return;
  event.preventDefault();
  if (!$("separate-form").hidden && event.dataTransfer.files[0]) chooseFile(event.dataTransfer.files[0]);
});

// --- submit and follow ---------------------------------------------------------------------

$("separate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  fail("form-error", "");
  const method = chosenMethod();
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("method", method.name);
  form.append("sources", chosenSources().join(","));
  for (const name of ADVANCED) {
    const value = $(name).value.trim();
    if (value !== "") form.append(name, value);
  }
  form.append("consistency", $("consistency").value);
  for (const input of document.querySelectorAll("#references input[type=file]")) {
    if (input.files[0]) form.append(`reference_${input.dataset.source}`, input.files[0], input.files[0].name);
  }
  $("submit").disabled = true;
  try {
    const created = await (await api("/separate", { method: "POST", body: form })).json();
    follow(created.job_id);
  } catch (error) {
    fail("form-error", error.message);
    validate();
  }
});

async function follow(jobId) {
  state.jobId = jobId;
  setState("running");
  show("results", false);
  show("job");
  $("cancel").disabled = false;
  progress({ status: "queued", progress: 0, stage: "queued" });
  let job = null;
  try {
    job = await watchEvents(jobId);
  } catch (error) {
    if (error.status === 401) return;
  }
  try {
    if (!job) job = await pollJob(jobId); // the stream broke: ask until it ends
  } catch (error) {
    return ended(`Lost the job: ${error.message}`);
  }
  if (job.status === "finished") return showResults(job);
  ended(job.status === "failed" ? `Failed: ${job.error || "unknown error"}` : "Canceled.");
}

function progress(job) {
  $("progress").value = job.progress;
  $("stage").textContent = `${job.status} · ${Math.round(job.progress * 100)}% · ${job.stage}`;
}

function ended(message) {
  $("stage").textContent = message;
  $("cancel").disabled = true;
  setState("ended");
  validate();
}

// Server-sent events read from a fetch body: `event: NAME` / `data: JSON` blocks.
async function watchEvents(jobId) {
  const response = await api(`/jobs/${jobId}/events`, { headers: { Accept: "text/event-stream" } });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (!data.length) continue;
      const payload = JSON.parse(data.join("\n"));
      if (name === "progress") progress(payload);
      else if (TERMINAL.includes(name)) { reader.cancel(); return payload; }
      else if (name === "error") { reader.cancel(); throw new ApiError(0, payload.message); }
    }
  }
}

async function pollJob(jobId) {
  for (;;) {
    const job = await (await api(`/jobs/${jobId}`)).json();
    if (TERMINAL.includes(job.status)) return job;
    progress(job);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

$("cancel").addEventListener("click", async () => {
  $("cancel").disabled = true;
  try { await api(`/jobs/${state.jobId}`, { method: "DELETE" }); } catch (error) { fail("form-error", error.message); }
});

// --- results -------------------------------------------------------------------------------

async function showResults(job) {
  progress(job);
  $("cancel").disabled = true;
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
  const seconds = (x) => (x === null || x === undefined ? "?" : x.toFixed(1));
  $("summary").textContent = `${job.method} on ${job.filename} (${seconds(job.duration_seconds)} s), ` +
    `bundle ${job.bundle}, ${seconds(job.timings.run_s)} s on ${job.device}.`;
  const box = $("stems");
  box.replaceChildren();
  const loads = [];
  for (const source of job.sources) {
    const links = job.stems[source];
    const audio = el("audio", { controls: "", preload: "auto" });
    const canvas = el("canvas", { "aria-label": `spectrogram of ${source}` });
    const wav = el("a", { download: `${source}.wav`, class: "button secondary", text: "WAV" });
    const flac = el("button", { type: "button", class: "secondary", text: "FLAC" });
    flac.addEventListener("click", () => save(links.flac, `${source}.flac`));
    box.append(el("div", { class: "stem", "data-source": source },
      el("div", { class: "stem-head" }, el("h3", { text: source }), audio, wav, flac), canvas));
    loads.push(loadStem(links.wav, audio, wav, canvas, job.sample_rate));
  }
  $("download-zip").onclick = () => save(job.zip_url, `${job.job_id}-stems.zip`);
  renderScores(job);
  show("results");
  $("results").scrollIntoView({ behavior: "smooth", block: "start" });
  $("stage").textContent = "finished — loading the stems…";
  const outcomes = await Promise.allSettled(loads);
  const failed = outcomes.filter((o) => o.status === "rejected");
  $("stage").textContent = failed.length ? `finished, but ${failed.length} stem(s) did not load: ${failed[0].reason}` : "finished";
  setState(failed.length ? "ended" : "finished");
  validate();
}

async function loadStem(url, audio, link, canvas, sampleRate) {
  const blob = await (await api(url)).blob();
  const objectUrl = URL.createObjectURL(blob);
  state.urls.push(objectUrl);
  link.href = objectUrl;
  const playable = new Promise((resolve, reject) => {
    audio.addEventListener("loadedmetadata", resolve, { once: true });
    audio.addEventListener("error", () => reject(new Error("the browser cannot play it")), { once: true });
  });
  audio.src = objectUrl;
  await playable;
  await drawSpectrogram(canvas, await blob.arrayBuffer(), sampleRate || 44100);
}

async function save(url, filename) {
  try {
    const blob = await (await api(url)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 5000);
  } catch (error) {
    fail("form-error", `Download failed: ${error.message}`);
  }
}

function renderScores(job) {
  const body = $("score-table").querySelector("tbody");
  body.replaceChildren();
  show("scores", Boolean(job.sdr));
  if (!job.sdr) return;
  const dB = (x) => (x === null || x === undefined ? "–" : x.toFixed(2));
  for (const source of job.sources) {
    body.append(el("tr", {}, el("td", { text: source }),
      el("td", { class: "num", text: dB(job.sdr[source]) }),
      el("td", { class: "num", text: dB(job.si_sdr && job.si_sdr[source]) })));
  }
  const oracle = job.oracle;
  $("oracle").textContent = oracle
    ? `Oracle best-of-${job.options.num_candidates} (picked with your references, an upper bound): candidate ${oracle.index}, SDR ` +
      job.sources.map((s) => `${s} ${dB(oracle.sdr[s])}`).join(", ") + " dB."
    : "";
}

// --- spectrogram: STFT of the decoded stem, log-frequency axis, 80 dB of range -------------

async function drawSpectrogram(canvas, bytes, sampleRate) {
  const context = new OfflineAudioContext(1, 1, sampleRate);
  const decoded = await context.decodeAudioData(bytes);
  const signal = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < signal.length; i++) signal[i] += channel[i] / decoded.numberOfChannels;
  }
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(200, Math.round((canvas.clientWidth || 800) * ratio));
  const height = Math.max(60, Math.round((canvas.clientHeight || 120) * ratio));
  canvas.width = width;
  canvas.height = height;
  const size = 1024;
  const bins = size / 2;
  const hop = Math.max(1, (signal.length - size) / Math.max(1, width - 1));
  const window_ = Float32Array.from({ length: size }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
  const fft = makeFft(size);
  const columns = [];
  let peak = -Infinity;
  for (let x = 0; x < width; x++) {
    const start = Math.round(x * hop);
    const re = new Float32Array(size);
    const im = new Float32Array(size);
    for (let i = 0; i < size; i++) re[i] = (signal[start + i] || 0) * window_[i];
    fft(re, im);
    const column = new Float32Array(bins);
    for (let k = 0; k < bins; k++) {
      column[k] = 10 * Math.log10(re[k] * re[k] + im[k] * im[k] + 1e-12);
      if (column[k] > peak) peak = column[k];
    }
    columns.push(column);
  }
  const nyquist = sampleRate / 2;
  const low = 30;
  const rowBin = Array.from({ length: height }, (_, y) => {
    const f = low * Math.pow(nyquist / low, (height - 1 - y) / (height - 1));
    return Math.min(bins - 1, Math.round((f / nyquist) * bins));
  });
  const image = canvas.getContext("2d").createImageData(width, height);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const level = Math.max(0, Math.min(1, (columns[x][rowBin[y]] - peak + 80) / 80));
      const [r, g, b] = colour(level);
      const at = 4 * (y * width + x);
      image.data[at] = r; image.data[at + 1] = g; image.data[at + 2] = b; image.data[at + 3] = 255;
    }
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  canvas.dataset.drawn = "true";
}

const MAGMA = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
  [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]];

function colour(level) {
  const at = level * (MAGMA.length - 1);
  const i = Math.min(MAGMA.length - 2, Math.floor(at));
  const t = at - i;
  return MAGMA[i].map((v, c) => Math.round(v + t * (MAGMA[i + 1][c] - v)));
}

// In-place iterative radix-2 FFT of (re, im), size a power of two.
function makeFft(size) {
  const levels = Math.log2(size);
  const reverse = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    let r = 0;
    for (let b = 0; b < levels; b++) r |= ((i >> b) & 1) << (levels - 1 - b);
    reverse[i] = r;
  }
  const cos = Float32Array.from({ length: size / 2 }, (_, i) => Math.cos((2 * Math.PI * i) / size));
  const sin = Float32Array.from({ length: size / 2 }, (_, i) => -Math.sin((2 * Math.PI * i) / size));
  return (re, im) => {
    for (let i = 0; i < size; i++) {
      const j = reverse[i];
      if (j > i) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
    }
    for (let half = 1; half < size; half *= 2) {
      const step = size / (2 * half);
      for (let start = 0; start < size; start += 2 * half) {
        for (let k = 0; k < half; k++) {
          const a = start + k;
          const b = a + half;
          const wr = cos[k * step];
          const wi = sin[k * step];
          const tr = wr * re[b] - wi * im[b];
          const ti = wr * im[b] + wi * re[b];
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
        }
      }
    }
  };
}

setState("loading");
loadMethods();
