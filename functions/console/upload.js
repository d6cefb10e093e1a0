// Direct uploads from the browser: ask the API to begin, send the bytes straight to the links it
// hands out (one form POST, or the parts of a multipart upload, several at once), then ask it
// to complete. A multipart upload is remembered in local storage (its attachment id and the
// file's name, size and date: never the key), so after a reload the same file, chosen again,
// sends only the parts the status call says are missing.

import { api, ApiError } from "./api.js";

const RESUME_STORAGE = "attachments.console.uploads";
/** Attempts per part before the upload gives up (network errors, expired links). */
const PART_ATTEMPTS = 4;

let types = null;

/** The content type the server expects for a name (its own table), else the browser's guess. */
export async function contentTypeFor(file) {
  if (types === null) {
    try {
      types = await (await fetch("/console/content-types.json", { cache: "no-store" })).json();
    } catch {
      types = {};
    }
  }
  const dot = file.name.lastIndexOf(".");
  const ext = dot > 0 ? file.name.slice(dot + 1).toLowerCase() : "";
  if (Object.hasOwn(types, ext)) return types[ext];
  if (/^[a-z0-9.+_-]+\/[a-z0-9.+_-]+$/i.test(file.type)) return file.type.toLowerCase();
  return "application/octet-stream";
}

/** The unfinished multipart uploads this browser remembers. */
export function resumeRecords() {
  try {
    const list = JSON.parse(localStorage.getItem(RESUME_STORAGE) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function saveRecords(list) {
  localStorage.setItem(RESUME_STORAGE, JSON.stringify(list));
}

export function forgetRecord(attachmentId) {
  saveRecords(resumeRecords().filter((r) => r.attachment_id !== attachmentId));
}

function sameParent(a, b) {
  return a.kind === b.kind && a.id === b.id;
}

/** The remembered upload of this very file (same name, size and modification time), if any. */
export function recordFor(parent, file) {
  return resumeRecords().find(
    (r) =>
      sameParent(r.parent, parent) &&
      r.name === file.name &&
      r.size === file.size &&
      r.last_modified === file.lastModified,
  );
}

/** The message of a storage error answer: the local store's JSON, or S3's XML. */
function storageMessage(xhr) {
  const text = xhr.responseText || "";
  try {
    const j = JSON.parse(text);
    if (j && j.error && j.error.message) return j.error.message;
  } catch {
    /* not JSON */
  }
  const m = /<Message>([^<]*)<\/Message>/.exec(text);
  return m ? m[1] : `storage answered ${xhr.status}`;
}

class StorageError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One request to storage with upload progress; resolves to the XHR once answered 2xx. */
function send(method, url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
      else reject(new StorageError(xhr.status, storageMessage(xhr)));
    };
    xhr.onerror = () => reject(new StorageError(0, "the connection to storage failed"));
    xhr.onabort = () => reject(new StorageError(0, "the upload was stopped"));
    xhr.send(body);
  });
}

/** The form POST: the signed fields first, the file last, in the part the answer names. */
async function postForm(upload, file, onProgress) {
  const form = new FormData();
  for (const [k, v] of Object.entries(upload.fields)) form.append(k, v);
  form.append(upload.file_field || "file", file, file.name);
  await send("POST", upload.url, form, (loaded) => onProgress(Math.min(loaded, file.size)));
  onProgress(file.size);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The parts still missing, several at once; each exactly `part_size` bytes but the last. */
async function sendParts(attachmentId, upload, file, parallel, onProgress) {
  const size = upload.part_size;
  const count = upload.part_count;
  const expected = (n) => (n < count ? size : file.size - size * (count - 1));
  const have = new Map(upload.parts_received.map((p) => [p.part_number, p.size]));
  const links = new Map(upload.parts.map((p) => [p.part_number, p.url]));
  const todo = [];
  let done = 0;
  for (let n = 1; n <= count; n += 1) {
    if (have.get(n) === expected(n)) done += expected(n);
    else todo.push(n);
  }
  const moving = new Map();
  const report = () => {
    let sum = done;
    for (const v of moving.values()) sum += v;
    onProgress(sum);
  };
  report();

  // Links run out (the API hands out at most 1000 at a time) or expire: one refresh at a time.
  let refreshing = null;
  const refresh = () => {
    refreshing ??= api
      .status(attachmentId)
      .then((s) => {
        links.clear();
        for (const p of s.upload.parts) links.set(p.part_number, p.url);
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  };

  const sendPart = async (n) => {
    const start = (n - 1) * size;
    const blob = file.slice(start, start + expected(n));
    for (let attempt = 1; ; attempt += 1) {
      if (!links.has(n)) await refresh();
      const url = links.get(n);
      if (!url) throw new Error(`the API gave no link for part ${n}`);
      try {
        await send("PUT", url, blob, (loaded) => {
          moving.set(n, Math.min(loaded, blob.size));
          report();
        });
        moving.delete(n);
        done += blob.size;
        report();
        return;
      } catch (e) {
        moving.delete(n);
        report();
        // A refused part (bad size, signature) will be refused again: only retry what may pass.
        const retriable = e.status === 0 || e.status === 403 || e.status >= 500;
        if (!retriable || attempt >= PART_ATTEMPTS) throw e;
        if (e.status === 403) links.delete(n);
        await sleep(500 * attempt);
      }
    }
  };

  const workers = [];
  for (let w = 0; w < Math.max(1, Math.min(parallel, todo.length)); w += 1) {
    workers.push(
      (async () => {
        while (todo.length) await sendPart(todo.shift());
      })(),
    );
  }
  await Promise.all(workers);
}

/**
 * Uploads one file to a parent through the direct-upload flow. `onProgress(bytesSent)` follows
 * the bytes; `onState(text)` the steps. Resolves to the ready attachment; rejects with an
 * Error whose message says why (a refused file gives the server's reason).
 */
export async function uploadFile(parent, file, { parallel = 4, onProgress = () => {}, onState = () => {} } = {}) {
  let record = recordFor(parent, file);
  let upload = null;
  let id = null;
  if (record) {
    try {
      const status = await api.status(record.attachment_id);
      upload = status.upload;
      id = record.attachment_id;
      onState("resuming");
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 409)) throw e;
      // Finished meanwhile (a reload during complete), or gone (swept): nothing to resume.
      if (e.status === 409) {
        const att = await api.get(record.attachment_id).catch(() => null);
        if (att && att.status === "ready") {
          forgetRecord(record.attachment_id);
          onProgress(file.size);
          return att;
        }
      }
      forgetRecord(record.attachment_id);
      record = null;
    }
  }
  if (!upload) {
    onState("starting");
    const began = await api.begin(parent, {
      file_name: file.name,
      content_type: await contentTypeFor(file),
      size: file.size,
    });
    upload = began.upload;
    id = began.attachment.id;
  }
  onState("uploading");
  if (upload.method === "POST") {
    await postForm(upload, file, onProgress);
  } else {
    if (!record) {
      const list = resumeRecords();
      list.push({
        attachment_id: id,
        parent: { kind: parent.kind, id: parent.id },
        name: file.name,
        size: file.size,
        last_modified: file.lastModified,
        part_count: upload.part_count,
        started_at: new Date().toISOString(),
      });
      saveRecords(list);
    }
    await sendParts(id, upload, file, parallel, onProgress);
  }
  onState("verifying");
  try {
    let done = await api.complete(id);
    // Too large to verify within the request: the server verifies it in the background.
    while (done.status === "verifying") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      done = await api.get(id);
    }
    forgetRecord(id);
    if (done.status === "rejected") {
      throw new ApiError(422, "unprocessable_entity", done.problem || "the file was refused");
    }
    return done;
  } catch (e) {
    // Refused: nothing left to resume. Anything else (the network): choose the file again.
    if (e instanceof ApiError && e.status === 422) forgetRecord(id);
    throw e;
  }
}
