// Uploads into a collection with progress, then follows each document's ingestion until it
// is ready or failed. Shared by the collection page and the chat's document panel.
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function upload(collectionId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `/api/collections/${collectionId}/documents`);
    request.setRequestHeader("x-csrf-token", csrf);
    request.upload.onprogress = (e) => e.lengthComputable && onProgress(Math.round((100 * e.loaded) / e.total));
    request.onload = () => {
      const body = JSON.parse(request.responseText || "{}");
      if (request.status < 300) resolve(body);
      else reject(new Error(body.error?.message || `HTTP ${request.status}`));
    };
    request.onerror = () => reject(new Error("network error"));
    const form = new FormData();
    form.append("file", file);
    request.send(form);
  });
}

// Uploads every file, then follows each one's ingestion to its end; a file that is refused
// or fails does not stop the others. `report(i, name, text, failed)` tells file i's state as
// it changes. Resolves to how many failed.
export async function ingest(collectionId, files, report) {
  const pending = [];
  let failed = 0;
  for (const [i, file] of [...files].entries()) {
    try {
      const doc = await upload(collectionId, file, (pct) => report(i, file.name, `uploading ${pct}%`, false));
      pending.push([i, doc]);
      report(i, file.name, doc.status, false);
    } catch (error) {
      failed += 1;
      report(i, file.name, `refused — ${error.message}`, true);
    }
  }
  for (const [i, doc] of pending) {
    let current = doc;
    try {
      while (current.status === "queued" || current.status === "processing") {
        const progress = current.chunks ? ` (${current.embedded_chunks}/${current.chunks} chunks)` : "";
        report(i, current.filename, `${current.status}${progress}`, false);
        await new Promise((r) => setTimeout(r, 500));
        current = await (await fetch(`/api/documents/${doc.id}`)).json();
      }
    } catch (error) {
      current = { ...current, status: "failed", error: error.message };
    }
    const bad = current.status === "failed";
    failed += bad ? 1 : 0;
    report(i, current.filename, `${current.status}${current.error ? ` — ${current.error}` : ""}`, bad);
  }
  return failed;
}

// One line per file in `list` (a <ul>), kept up to date by `ingest`'s reports.
export function fileReports(list) {
  list.replaceChildren();
  const lines = [];
  return (i, name, text, failed) => {
    if (!lines[i]) {
      lines[i] = document.createElement("li");
      list.append(lines[i]);
    }
    lines[i].textContent = `${name}: ${text}`;
    lines[i].classList.toggle("error", failed);
  };
}

const page = document.getElementById("collection");
if (page) {
  const status = document.getElementById("upload-status");
  document.getElementById("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = document.getElementById("files").files;
    if (!files.length) return;
    const failed = await ingest(page.dataset.collectionId, files, fileReports(status));
    if (!failed) location.reload();  // the list of documents shows them all
    else status.insertAdjacentHTML("beforeend", '<li><a href="">Show the documents</a></li>');
  });
  document.getElementById("upload-button").disabled = false;
  document.documentElement.dataset.ready = "";
}
