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

export async function ingest(collectionId, files, report) {
  const documents = [];
  for (const file of files) {
    const doc = await upload(collectionId, file, (pct) => report(`${file.name}: uploading ${pct}%`));
    documents.push(doc);
  }
  for (const doc of documents) {
    let current = doc;
    while (current.status === "queued" || current.status === "processing") {
      const progress = current.chunks ? ` (${current.embedded_chunks}/${current.chunks} chunks)` : "";
      report(`${current.filename}: ${current.status}${progress}`);
      await new Promise((r) => setTimeout(r, 500));
      current = await (await fetch(`/api/documents/${doc.id}`)).json();
    }
    report(`${current.filename}: ${current.status}${current.error ? ` — ${current.error}` : ""}`);
    if (current.status === "failed") throw new Error(`${current.filename}: ${current.error}`);
  }
  return documents;
}

const page = document.getElementById("collection");
if (page) {
  const status = document.getElementById("upload-status");
  document.getElementById("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = document.getElementById("files").files;
    if (!files.length) return;
    try {
      await ingest(page.dataset.collectionId, files, (text) => { status.textContent = text; });
      location.reload();
    } catch (error) {
      status.textContent = error.message;
    }
  });
  document.getElementById("upload-button").disabled = false;
  document.documentElement.dataset.ready = "";
}
