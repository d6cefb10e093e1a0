// The console page: the key, the parent, its attachments, and uploads with their progress.

import { api, ApiError, currentKey, rememberKey, forgetKey } from "./api.js";
import { el, humanDuration, humanSize } from "./format.js";
import { forgetRecord, resumeRecords, uploadFile } from "./upload.js";

const PARENT_STORAGE = "attachments.console.parent";
const PARALLEL_STORAGE = "attachments.console.parallel";

const $ = (id) => document.getElementById(id);
let parent = null;
let nextCursor = null;

function say(text, ok = false) {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("ok", ok);
  m.hidden = !text;
}

function explain(e) {
  if (e instanceof ApiError && e.status === 401) return "The API key was refused: paste a valid key.";
  return e.message || String(e);
}

// ---- the key ---------------------------------------------------------------------------

function showKeyState() {
  $("key-state").textContent = currentKey()
    ? "A key is in use in this tab."
    : "No key yet: paste the key the server printed on its first start.";
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  rememberKey($("api-key").value);
  $("api-key").value = "";
  showKeyState();
  if (parent) refreshList();
});

$("forget-key").addEventListener("click", () => {
  forgetKey();
  showKeyState();
});

// ---- the parent and its attachments ---------------------------------------------------

$("parent-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  openParent({ kind: $("parent-kind").value.trim(), id: $("parent-id").value.trim() });
});

$("register-parent").addEventListener("click", async () => {
  try {
    await api.putParent(parent);
    $("register-parent").hidden = true;
    say(`Registered ${parent.kind}/${parent.id}.`, true);
    refreshList();
  } catch (e) {
    say(explain(e));
  }
});

function openParent(p) {
  parent = p;
  localStorage.setItem(PARENT_STORAGE, JSON.stringify(p));
  say("");
  refreshList();
  showResumable();
}

async function refreshList() {
  if (!parent) return;
  if (!currentKey()) {
    say("Paste an API key first.");
    return;
  }
  $("register-parent").hidden = true;
  try {
    const page = await api.list(parent);
    $("attachment-rows").replaceChildren(...page.items.map(row));
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
    $("list-caption").textContent = `Attachments of ${parent.kind}/${parent.id}: ${page.items.length}${nextCursor ? " shown" : ""}.`;
  } catch (e) {
    $("attachment-rows").replaceChildren();
    $("list-caption").textContent = `No attachments shown for ${parent.kind}/${parent.id}.`;
    if (e instanceof ApiError && e.status === 404) {
      say(`${parent.kind}/${parent.id} is not registered yet.`);
      $("register-parent").hidden = false;
    } else {
      say(explain(e));
    }
  }
}

$("more").addEventListener("click", async () => {
  try {
    const page = await api.list(parent, nextCursor);
    $("attachment-rows").append(...page.items.map(row));
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
  } catch (e) {
    say(explain(e));
  }
});

function preview(a) {
  const name = a.file_name || "file";
  if (a.thumbnail_url) {
    // A small PNG the server made when the file was stored: the image, or its family's icon.
    return el("img", { class: "thumb", src: a.thumbnail_url, alt: `Preview of ${name}`, loading: "lazy", width: 64, height: 64 });
  }
  return el("span", { class: "icon", role: "img", "aria-label": `No preview of ${name}` }, (a.extension || "file").toUpperCase().slice(0, 4));
}

function row(a) {
  const name = a.file_name || "(no file yet)";
  const actions = el("div", { class: "actions" });
  if (a.download_url) {
    actions.append(el("a", { class: "button", href: a.download_url, download: name, "aria-label": `Download ${name}` }, "Download"));
  }
  actions.append(
    el("button", { type: "button", class: "danger", "aria-label": `Delete ${name}`, onclick: () => remove(a, name) }, "Delete"),
  );
  const status = a.problem ? `${a.status}: ${a.problem}` : a.status;
  return el(
    "tr",
    { "data-id": a.id },
    el("td", {}, preview(a)),
    el("th", { scope: "row", class: "name" }, name),
    el("td", { class: "size" }, humanSize(a.size)),
    el("td", {}, a.content_type || ""),
    el("td", {}, a.type || ""),
    el("td", {}, a.tags.map((t) => el("span", { class: "tag" }, t))),
    el("td", { class: "status" }, status),
    el("td", {}, actions),
  );
}

async function remove(a, name) {
  if (!window.confirm(`Delete ${name}? Its file is removed for good.`)) return;
  try {
    await api.remove(a.id);
    say(`Deleted ${name}.`, true);
    refreshList();
  } catch (e) {
    say(explain(e));
  }
}

// ---- uploads ---------------------------------------------------------------------------

function parallelParts() {
  const n = Number.parseInt($("parallel").value, 10);
  return Number.isFinite(n) ? Math.min(8, Math.max(1, n)) : 4;
}

$("parallel").value = localStorage.getItem(PARALLEL_STORAGE) || "4";
$("parallel").addEventListener("change", () => {
  localStorage.setItem(PARALLEL_STORAGE, String(parallelParts()));
});

function showResumable() {
  const mine = parent ? resumeRecords().filter((r) => r.parent.kind === parent.kind && r.parent.id === parent.id) : [];
  $("resumable").hidden = mine.length === 0;
  $("resumable-list").replaceChildren(
    ...mine.map((r) =>
      el(
        "li",
        { "data-attachment": r.attachment_id },
        `${r.name} (${humanSize(r.size)}) `,
        el("button", {
          type: "button",
          class: "secondary",
          "aria-label": `Forget the unfinished upload of ${r.name}`,
          onclick: () => {
            forgetRecord(r.attachment_id);
            showResumable();
          },
        }, "Forget"),
      ),
    ),
  );
}

/** Uploads the chosen files one after the other, each with its own progress line. */
let batch = null;

async function uploadFiles(files) {
  if (!parent) return say("Choose a parent first.");
  if (!currentKey()) return say("Paste an API key first.");
  say("");
  if (!batch) batch = { total: 0, sent: new Map(), already: new Map(), started: performance.now(), queue: [] };
  $("progress").hidden = false;
  for (const file of files) {
    const item = { file, line: progressLine(file) };
    batch.total += file.size;
    batch.sent.set(item, 0);
    batch.queue.push(item);
  }
  if (batch.running) return;
  batch.running = true;
  const here = parent;
  while (batch.queue.length) {
    const item = batch.queue.shift();
    await uploadOne(here, item);
  }
  batch = null;
  showResumable();
}

function progressLine(file) {
  const bar = el("progress", { max: file.size || 1, value: 0, "aria-label": `Upload of ${file.name}` });
  const text = el("span", { class: "state", "aria-live": "polite" }, "waiting");
  const li = el("li", { "data-file": file.name, "data-state": "waiting" }, el("span", { class: "file-name" }, file.name), bar, text);
  $("upload-list").append(li);
  return { li, bar, text };
}

function overall() {
  let sent = 0;
  for (const v of batch.sent.values()) sent += v;
  // Speed counts what this page sent, not the parts a resumed upload already had.
  let already = 0;
  for (const v of batch.already.values()) already += v;
  const seconds = (performance.now() - batch.started) / 1000;
  const speed = seconds > 0 ? (sent - already) / seconds : 0;
  $("overall-progress").max = batch.total || 1;
  $("overall-progress").value = sent;
  const left = speed > 0 ? humanDuration((batch.total - sent) / speed) : "";
  $("overall-text").textContent = `${humanSize(sent)} of ${humanSize(batch.total)}, ${humanSize(Math.round(speed))}/s${left ? ", " + left + " left" : ""}`;
}

async function uploadOne(here, item) {
  const { file, line } = item;
  const setState = (state, text) => {
    line.li.dataset.state = state;
    line.text.textContent = text;
  };
  try {
    const done = await uploadFile(here, file, {
      parallel: parallelParts(),
      onProgress: (sent) => {
        if (!batch.already.has(item)) batch.already.set(item, sent);
        line.bar.value = sent;
        batch.sent.set(item, sent);
        overall();
        if (line.li.dataset.state === "uploading" || line.li.dataset.state === "resuming") {
          line.text.textContent = `${humanSize(sent)} of ${humanSize(file.size)}`;
        }
      },
      onState: (s) => {
        setState(s, s === "verifying" ? "checking the file…" : s);
        if (s === "resuming") line.li.dataset.resumed = "true";
        if (s === "uploading" && line.li.dataset.resumed) line.li.dataset.state = "resuming";
        showResumable();
      },
    });
    line.bar.value = file.size;
    batch.sent.set(item, file.size);
    overall();
    setState("done", `done: ${done.status}`);
    line.text.className = "state done";
  } catch (e) {
    setState("refused", `refused: ${explain(e)}`);
    line.text.className = "state refused";
  }
  if (parent === here) refreshList();
}

const drop = $("drop-zone");
drop.addEventListener("click", () => $("file-input").click());
drop.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    $("file-input").click();
  }
});
drop.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  uploadFiles([...ev.dataTransfer.files]);
});
$("file-input").addEventListener("change", (ev) => {
  const files = [...ev.target.files];
  ev.target.value = "";
  uploadFiles(files);
});

// ---- start -----------------------------------------------------------------------------

showKeyState();
try {
  const saved = JSON.parse(localStorage.getItem(PARENT_STORAGE) || "null");
  if (saved && saved.kind && saved.id) {
    $("parent-kind").value = saved.kind;
    $("parent-id").value = saved.id;
    openParent(saved);
  }
} catch {
  localStorage.removeItem(PARENT_STORAGE);
}
