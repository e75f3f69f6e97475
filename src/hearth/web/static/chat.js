import { fileReports, ingest } from "./collections.js";
import { offerPresets } from "./preset_picker.js";

// The chat page's behaviour: send, stream, stop, regenerate, edit, copy; chat menu actions.
// Text from the model is only ever set as textContent while streaming; the final answer's
// HTML comes from the server's Markdown renderer (raw HTML escaped there).
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const main = document.getElementById("chat");
const log = document.getElementById("log");
const form = document.getElementById("composer");
const prompt = document.getElementById("prompt");
const model = document.getElementById("model");
const stopButton = document.getElementById("stop");
const sendButton = document.getElementById("send");
const status = document.getElementById("status");
let chatId = main.dataset.chatId || null;
const attached = new Set((main.dataset.collections || "").split(",").filter(Boolean));
let controller = null;

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: controller?.signal,
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error?.message || `HTTP ${response.status}`);
  }
  return response;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A message's images: thumbnails, each a link to the image at full size.
function imagesNode(images, base) {
  const box = element("div", "images");
  images.forEach((image, i) => {
    const url = `${base}${image.id}`;
    const link = element("a");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = element("img");
    img.src = url;
    img.alt = `Image ${i + 1} of this message`;
    link.append(img);
    box.append(link);
  });
  return box;
}

function messageNode(role, text) {
  const article = element("article", `msg ${role}`);
  article.dataset.role = role;
  article.append(element("div", "who", role === "user" ? "You" : model.value));
  article.append(element("div", role === "user" ? "body text" : "body streaming", text));
  const actions = element("div", "actions");
  actions.append(element("button", "link copy", "Copy"));
  actions.append(element("button", `link ${role === "user" ? "edit" : "regenerate"}`,
                         role === "user" ? "Edit" : "Regenerate"));
  for (const b of actions.querySelectorAll("button")) b.type = "button";
  article.append(actions);
  log.append(article);
  return article;
}

function showAnswer(article, message, html, citations, cited_) {
  article.dataset.id = message.id;
  const body = article.querySelector(".body");
  body.className = "body md";
  body.innerHTML = html;  // rendered and sanitised by the server
  addCodeCopyButtons(body);
  if (message.status !== "complete") {
    article.classList.add(message.status);
    article.querySelector(".who").append(element("span", "tag", message.status));
  }
  if (message.error) article.insertBefore(element("p", "error", message.error), article.querySelector(".actions"));
  if (citations?.length) {
    // The sources the answer cites, by their numbers; the others folded away below.
    const cited = new Set(cited_ || []);
    const source = (c, n) => {
      const item = element("li");
      item.id = `cite-${message.id}-${n}`;
      const details = element("details");
      let where = `[${n}] ${c.title || c.filename}`;
      if (c.page) where += `, page ${c.page}`;
      if (c.headings?.length) where += ` — ${c.headings.join(" › ")}`;
      const links = element("p", "source-links");
      const open = element("a", "", "Open in the document");
      open.href = `/documents/${c.document_id}?passage=${c.chunk_id}#passage-${c.chunk_id}`;
      links.append(open);
      if (c.filename.toLowerCase().endsWith(".pdf")) {
        const pdf = element("a", "", `the PDF at page ${c.page || 1}`);
        pdf.href = `/api/documents/${c.document_id}/file#page=${c.page || 1}`;
        pdf.target = "_blank";
        pdf.rel = "noopener";
        links.append(" · ", pdf);
      }
      details.append(element("summary", "", where), element("blockquote", "", c.text), links);
      item.append(details);
      return item;
    };
    const before = article.querySelector(".actions");
    if (cited.size) {
      const list = element("ul", "citations");
      list.setAttribute("aria-label", "Sources");
      [...cited].forEach((n) => list.append(source(citations[n - 1], n)));
      article.insertBefore(list, before);
    }
    const rest = citations.map((c, i) => [c, i + 1]).filter(([, n]) => !cited.has(n));
    if (rest.length) {
      const label = cited.size ? "Other passages" : "Passages given to the model";
      const folded = element("details", "other-passages");
      folded.append(element("summary", "", `${label} (${rest.length})`));
      const list = element("ul", "citations");
      list.setAttribute("aria-label", label);
      rest.forEach(([c, n]) => list.append(source(c, n)));
      folded.append(list);
      article.insertBefore(folded, before);
    }
  }
  if (message.completion_tokens) {
    article.querySelector(".actions").append(
      element("span", "muted tokens", `${message.prompt_tokens} + ${message.completion_tokens} tokens`));
  }
}

async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) type = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield { type, data: JSON.parse(data || "{}") };
    }
  }
}

// The header and the chat list follow the chat's title without a reload: the first
// question names the chat at once, and the model's own title comes a moment after the
// answer (it is asked for once the answer is complete), so it is read again twice.
function showTitle(chat) {
  document.getElementById("chat-title").textContent = chat.title;
  document.title = `${chat.title} · Hearth`;
  const list = document.querySelector(".chat-list");
  let link = list.querySelector(`a[href="/c/${chat.id}"]`);
  if (!link) {
    list.querySelector("li.muted")?.remove();
    list.querySelector("a[aria-current]")?.removeAttribute("aria-current");
    const item = element("li");
    link = element("a");
    link.href = `/c/${chat.id}`;
    link.setAttribute("aria-current", "page");
    link.append(element("span", "chat-name"));
    item.append(link);
    // After the pinned ones: the newest unpinned chat.
    const pinned = list.querySelectorAll("li.pinned");
    if (pinned.length) pinned[pinned.length - 1].after(item); else list.prepend(item);
  }
  (link.querySelector(".chat-name") || link).textContent = chat.title;
}

async function followTitle() {
  const id = chatId;
  for (const wait of [0, 2500, 6000]) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (id !== chatId) return;
    try {
      showTitle(await (await fetch(`/api/chats/${id}`)).json());
    } catch {
      return;  // the title stays as it was; a reload shows the stored one
    }
  }
}

// What did not fit in the model's window, said where it happened (the server fits the
// conversation; this only tells).
function showContextNote(message, { dropped, cut, images }) {
  const parts = [];
  if (cut) parts.push(`the first ${cut.toLocaleString()} characters of this message were cut`);
  if (dropped) parts.push(`${dropped} earlier message${dropped === 1 ? " was" : "s were"} left out`);
  if (parts.length) {
    message?.append(element("p", "note", `Longer than the model's window: ${parts.join(", and ")}.`));
  }
  if (images) {
    message?.append(element("p", "note",
      `${model.value} does not read images: ${images} image${images === 1 ? " was" : "s were"} left out of the conversation it was given.`));
  }
}

// Before sending: a message longer than the model's window will be cut; say so while
// typing (an estimate, at the server's own rate of characters per token).
const CHARS_PER_TOKEN = 3;
const composerNote = document.getElementById("composer-note");
function checkLength() {
  const size = Number(model.selectedOptions[0]?.dataset.window || 0);
  const tokens = Math.ceil(prompt.value.length / CHARS_PER_TOKEN);
  const room = Math.floor(size / 2);
  composerNote.hidden = !size || tokens <= room;
  composerNote.textContent = composerNote.hidden ? "" :
    `About ${tokens.toLocaleString()} tokens: ${model.value} reads about ${room.toLocaleString()} ` +
    "beside its answer, so the start of this message will be cut.";
}
prompt.addEventListener("input", checkLength);
model.addEventListener("change", checkLength);

function busy(on) {
  sendButton.hidden = on;
  stopButton.hidden = !on;
  status.textContent = on ? "Generating…" : status.textContent;
}

// The conversation again from the server, as the page renders it: after switching branch,
// and after a regenerate or an edit (the new version's "‹ 2/3 ›" arrows), no reload.
async function showConversation() {
  const response = await fetch(`/c/${chatId}/conversation`);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const html = await response.text();  // rendered and escaped by the server
  log.querySelectorAll("article.msg, a.more").forEach((node) => node.remove());
  log.insertAdjacentHTML("beforeend", html);
  addCodeCopyButtons(log);
}

// Runs one answering request (send, regenerate or edit) and shows it as it streams.
async function converse(method, path, body, { question, branched = false }) {
  controller = new AbortController();
  busy(true);
  let answer = null, text = "";
  try {
    const response = await api(method, path, body);
    for await (const event of events(response)) {
      if (event.type === "question") {
        if (question) question.dataset.id = event.data.message.id;
        if (question && event.data.message.images?.length) {
          // An edited question's new version shows its own copies of the images.
          question.querySelector(":scope > .images")?.remove();
          question.querySelector(".body").after(
            imagesNode(event.data.message.images, `/api/chats/${chatId}/images/`));
        }
        if (event.data.context) showContextNote(question || log.lastElementChild, event.data.context);
        answer = messageNode("assistant", "");
        answer.scrollIntoView({ block: "end" });
        answer.citations = event.data.citations;
      } else if (event.type === "delta") {
        text += event.data.text;
        answer.querySelector(".body").textContent = text;
      } else if (event.type === "done" || event.type === "error") {
        const message = event.type === "done" ? event.data.message : event.data.answer;
        showAnswer(answer, message, event.data.html, answer.citations, event.data.cited);
        status.textContent = event.type === "error" ? event.data.message : "";
        followTitle();  // the question named the chat whatever became of the answer
        if (branched) await showConversation().catch(() => {});  // a reload shows them too
      }
    }
  } catch (error) {
    if (error.name === "AbortError") {
      status.textContent = "Stopped.";
      if (answer) { answer.classList.add("stopped"); answer.querySelector(".who").append(element("span", "tag", "stopped")); }
    } else {
      status.textContent = error.message;
      if (answer) answer.classList.add("failed");
    }
  } finally {
    controller = null;
    busy(false);
  }
}

async function send(text) {
  const question = messageNode("user", text);  // shown at once; stored when the answer starts
  question.scrollIntoView({ block: "end" });
  if (!chatId) {
    // A preset (in the picker beside the models) gives the chat its model, settings and
    // collections; collections attached here instead replace its own.
    const preset = model.selectedOptions[0]?.dataset.preset;
    const body = preset ? { preset_id: preset } : { model: model.value };
    if (!preset || attached.size) body.collection_ids = [...attached];
    const created = await (await api("POST", "/api/chats", body)).json();
    if (created.notes?.length) question.append(element("p", "note", created.notes.join(" ")));
    created.collection_ids.forEach((id) => attached.add(id));
    showAttachedCount();
    chatId = created.id;
    main.dataset.chatId = chatId;
    history.replaceState(null, "", `/c/${chatId}`);
  }
  let images = [];
  if (waiting.length) {
    try {
      images = await uploadImages();
    } catch (error) {
      question.remove();
      prompt.value = text;  // nothing was sent: the message and its images stay to retry
      throw error;
    }
  }
  clearImages();
  await converse("POST", `/api/chats/${chatId}/messages`, { content: text, images }, { question });
}

// Images for the next message: chosen (the Image button) or pasted, shown as thumbnails
// with Remove, uploaded to the chat when the message is sent. Only a model that reads
// images takes them; for another the button is disabled and a paste says why.
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const MAX_IMAGES = 4;
const imageMaxBytes = Number(form.dataset.imageMaxBytes || 0);
const attachInput = document.getElementById("attach-image");
const attachLabel = document.getElementById("attach-label");
const strip = document.getElementById("attachments");
const imageNote = document.getElementById("image-note");
const waiting = [];  // {file, url}

const readsImages = () => model.selectedOptions[0]?.dataset.vision === "true";

function sayImages(text) {
  imageNote.hidden = !text;
  imageNote.textContent = text || "";
}

function showAttachControl() {
  const able = readsImages();
  attachInput.disabled = !able;
  attachLabel.setAttribute("aria-disabled", String(!able));
  attachLabel.title = able ? "Attach images (PNG, JPEG, WebP, GIF)"
    : `${model.value} does not read images`;
  if (!able && waiting.length) {
    sayImages(`${model.value} does not read images: remove them, or choose a model that reads images.`);
  } else if (able) {
    sayImages("");
  }
}

function drawImages() {
  strip.replaceChildren();
  strip.hidden = !waiting.length;
  waiting.forEach((item, i) => {
    const entry = element("li");
    const img = element("img");
    img.src = item.url;
    img.alt = `Image ${i + 1} to send: ${item.file.name || "pasted"}`;
    const remove = element("button", "link remove", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove image ${i + 1}`);
    remove.addEventListener("click", () => { waiting.splice(i, 1); drawImages(); showAttachControl(); });
    entry.append(img, remove);
    strip.append(entry);
  });
}

function clearImages() {
  waiting.length = 0;
  drawImages();
}

function addImages(files) {
  if (!readsImages()) {
    sayImages(`${model.value} does not read images: choose a model that reads images to attach one.`);
    return;
  }
  const refused = [];
  for (const file of files) {
    if (!IMAGE_TYPES.includes(file.type)) refused.push(`${file.name || "the image"} is not PNG, JPEG, WebP or GIF`);
    else if (imageMaxBytes && file.size > imageMaxBytes) refused.push(`${file.name || "the image"} is larger than ${(imageMaxBytes / 1048576).toFixed(1)} MB`);
    else if (waiting.length >= MAX_IMAGES) refused.push(`at most ${MAX_IMAGES} images a message`);
    else {
      const item = { file, url: "" };
      waiting.push(item);
      // A data: URL (the page's policy allows data: images, not blob:).
      const reader = new FileReader();
      reader.onload = () => { item.url = reader.result; drawImages(); };
      reader.readAsDataURL(file);
    }
  }
  sayImages(refused.join("; "));
  drawImages();
}

async function uploadImages() {
  const ids = [];
  for (const { file } of waiting) {
    const body = new FormData();
    body.append("file", file, file.name || "pasted-image");
    const response = await fetch(`/api/chats/${chatId}/images`, {
      method: "POST", headers: { "x-csrf-token": csrf }, body,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error?.message || `HTTP ${response.status}`);
    ids.push(data.id);
  }
  return ids;
}

attachInput.addEventListener("change", () => {
  addImages([...attachInput.files]);
  attachInput.value = "";
});
prompt.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  if (!files.length) return;
  event.preventDefault();
  addImages(files);
});
model.addEventListener("change", showAttachControl);
showAttachControl();

// What follows a message leaves the page when another version of it is asked for (the
// server keeps it: the arrows lead back to it).
function dropAfter(article) {
  while (article.nextElementSibling) article.nextElementSibling.remove();
}

// Edit in place: Save answers the new version (a branch; the old one stays), Cancel or
// Escape puts the message back as it was.
function editMessage(article) {
  const body = article.querySelector(".body");
  if (body.querySelector("textarea")) return;
  const original = body.textContent;
  const editor = element("textarea");
  editor.value = original;
  editor.rows = Math.min(12, original.split("\n").length + 1);
  editor.setAttribute("aria-label", "Edit message");
  const save = element("button", "", "Save and send");
  const cancel = element("button", "link", "Cancel");
  save.type = cancel.type = "button";
  const buttons = element("div", "edit-actions");
  buttons.append(save, cancel);
  body.classList.add("editing");
  body.replaceChildren(editor, buttons);
  editor.focus();
  const restore = () => {
    body.classList.remove("editing");
    body.textContent = original;
  };
  cancel.addEventListener("click", restore);
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.stopPropagation(); restore(); }
  });
  save.addEventListener("click", async () => {
    const content = editor.value.trim();
    if (!content || controller) return;
    restore();
    body.textContent = content;
    dropAfter(article);
    await converse("PUT", `/api/chats/${chatId}/messages/${article.dataset.id}`, { content },
                   { question: article, branched: true });
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = prompt.value.trim();
  if (!text || controller) return;
  prompt.value = "";
  send(text).catch((error) => { status.textContent = error.message; busy(false); });
});
prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && controller) controller.abort();
});
stopButton.addEventListener("click", () => controller?.abort());

log.addEventListener("click", async (event) => {
  const cite = event.target.closest("a.cite");
  if (cite) {  // [n] opens its source (folded away among the other passages, perhaps)
    const source = document.getElementById(cite.hash.slice(1));
    source?.closest("details.other-passages")?.setAttribute("open", "");
    source?.querySelector("details")?.setAttribute("open", "");
    return;
  }
  const button = event.target.closest("button");
  const article = event.target.closest("article.msg");
  if (!button || !article || controller) return;
  if (button.classList.contains("branch")) {  // "‹" or "›": another version of it
    if (!button.dataset.to) return;
    try {
      await api("POST", `/api/chats/${chatId}/messages/${button.dataset.to}/select`);
      await showConversation();
      status.textContent = "";
    } catch (error) {
      status.textContent = error.message;
    }
  } else if (button.classList.contains("copy")) {
    await navigator.clipboard?.writeText(article.querySelector(".body").innerText);
    status.textContent = "Copied.";
  } else if (button.classList.contains("regenerate")) {
    let question = article.previousElementSibling;
    while (question && question.dataset.role !== "user") question = question.previousElementSibling;
    if (!question?.dataset.id) return;
    dropAfter(question);
    await converse("POST", `/api/chats/${chatId}/messages/${question.dataset.id}/regenerate`, undefined,
                   { question: null, branched: true });
  } else if (button.classList.contains("edit")) {
    editMessage(article);
  }
});

function addCodeCopyButtons(root) {
  for (const pre of root.querySelectorAll("pre")) {
    if (pre.querySelector("button.copy-code")) continue;
    const button = element("button", "link copy-code", "Copy code");
    button.type = "button";
    button.addEventListener("click", () => navigator.clipboard?.writeText(pre.querySelector("code")?.innerText || pre.innerText));
    pre.before(button);
  }
}
addCodeCopyButtons(log);

model.addEventListener("change", () => {
  if (chatId) api("PATCH", `/api/chats/${chatId}`, { model: model.value }).catch((e) => { status.textContent = e.message; });
});
document.getElementById("rename")?.addEventListener("click", async () => {
  const title = window.prompt("Rename chat", document.getElementById("chat-title").textContent);
  if (!title?.trim()) return;
  await api("PATCH", `/api/chats/${chatId}`, { title: title.trim() });
  document.getElementById("chat-title").textContent = title.trim();
  const link = document.querySelector(`.chat-list a[href="/c/${chatId}"] .chat-name`);
  if (link) link.textContent = title.trim();
});
// Archive sends the chat to the archived list (and back); pin keeps it at the top.
document.getElementById("archive")?.addEventListener("click", async (event) => {
  const archived = event.target.dataset.on !== "true";
  await api("PATCH", `/api/chats/${chatId}`, { archived });
  location.href = archived ? "/" : `/c/${chatId}`;
});
document.getElementById("pin")?.addEventListener("click", async (event) => {
  await api("PATCH", `/api/chats/${chatId}`, { pinned: event.target.dataset.on !== "true" });
  location.reload();
});
document.getElementById("delete")?.addEventListener("click", async () => {
  if (!window.confirm("Delete this chat for good?")) return;
  await api("DELETE", `/api/chats/${chatId}`);
  location.href = "/";
});
log.scrollTop = log.scrollHeight;

// The documents panel: which collections answers come from, and uploads from the chat.
const panel = document.getElementById("documents");
const choices = document.getElementById("collection-choices");
const uploadTarget = document.getElementById("upload-collection");
const uploadStatus = document.getElementById("chat-upload-status");

function showAttachedCount() {
  document.getElementById("attached-count").textContent = attached.size ? ` (${attached.size})` : "";
}

async function saveAttached() {
  showAttachedCount();
  if (chatId) await api("PATCH", `/api/chats/${chatId}`, { collection_ids: [...attached] });
}

async function loadCollections() {
  const collections = await (await fetch("/api/collections")).json();
  choices.querySelectorAll("label, p").forEach((n) => n.remove());
  uploadTarget.replaceChildren();
  if (!collections.length) choices.append(element("p", "muted", "No collections yet."));
  for (const c of collections) {
    const label = element("label");
    const box = element("input");
    box.type = "checkbox";
    box.value = c.id;
    box.checked = attached.has(c.id);
    box.addEventListener("change", () => {
      box.checked ? attached.add(c.id) : attached.delete(c.id);
      saveAttached().catch((e) => { status.textContent = e.message; });
    });
    label.append(box, ` ${c.name}`);
    choices.append(label);
    const option = element("option", "", c.name);
    option.value = c.id;
    uploadTarget.append(option);
  }
}

panel.addEventListener("toggle", () => { if (panel.open) loadCollections(); });
document.getElementById("chat-upload").addEventListener("change", async (event) => {
  const files = event.target.files;
  if (!files.length) return;
  let target = uploadTarget.value;
  try {
    if (!target) {
      const created = await (await api("POST", "/api/collections", { name: "My documents" })).json();
      target = created.id;
    }
    await ingest(target, files, fileReports(uploadStatus));
    attached.add(target);
    await saveAttached();
    await loadCollections();
  } catch (error) {
    uploadStatus.textContent = error.message;
  }
  event.target.value = "";
});
showAttachedCount();

// Import chats: a Hearth export (one chat, opened at once) or Open WebUI's export of many
// (each chat's result listed under the button, with what was not imported). The file goes
// as it is: the server tells the two apart.
const importReport = document.getElementById("import-report");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
function reportLine(text, className, href) {
  const item = element("li", className);
  if (href) {
    const link = element("a", "", text);
    link.href = href;
    item.append(link);
  } else {
    item.textContent = text;
  }
  importReport.append(item);
  return item;
}
document.getElementById("import-chat").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  importReport.replaceChildren();
  reportLine(`Importing ${file.name}…`, "muted");
  try {
    const response = await fetch("/api/chats/import", {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: file,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error?.message || `HTTP ${response.status}`);
    if (!data.chats) {
      location.href = `/c/${data.id}`;
      return;
    }
    importReport.replaceChildren();
    reportLine(`${data.imported} of ${plural(data.chats.length, "chat")} imported.`);
    for (const chat of data.chats) {
      if (chat.error) {
        reportLine(chat.error, "error");
        continue;
      }
      const line = reportLine(`${chat.title}: ${plural(chat.messages, "message")}`, "", `/c/${chat.id}`);
      const more = [];
      if (chat.left_out) more.push(`${plural(chat.left_out, "message")} of other branches left out`);
      if (chat.not_imported.length) more.push(`not imported: ${chat.not_imported.join("; ")}`);
      more.push(...chat.notes);
      if (more.length) line.append(element("span", "muted", ` — ${more.join("; ")}`));
    }
  } catch (error) {
    importReport.replaceChildren();
    reportLine(`Import failed: ${error.message}`, "error");
  }
  event.target.value = "";
});

// Sharing, from the chat's "Share" menu: a read-only link for anyone signed in here, made,
// copied and revoked. It shows the chat as it is when made.
const shareMenu = document.getElementById("share-menu");
if (shareMenu) {
  const state = document.getElementById("share-state");
  const link = document.getElementById("share-link");
  const create = document.getElementById("share-create");
  const copy = document.getElementById("share-copy");
  const revoke = document.getElementById("share-revoke");
  const unshared = state.textContent;
  const showShare = (share, note) => {
    for (const node of [link, document.getElementById("share-link-label"), copy, revoke]) {
      node.hidden = !share;
    }
    create.hidden = Boolean(share);
    link.value = share ? share.url : "";
    state.textContent = note || (share
      ? `Anyone signed in to this site can read this chat's first ${plural(share.messages, "message")} ` +
        "with this link; what you write later stays private."
      : unshared);
  };
  const request = async (method) => {
    const response = await fetch(`/api/chats/${chatId}/share`, { method, headers: { "x-csrf-token": csrf } });
    if (method === "GET" && response.status === 404) return null;
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.error?.message || `HTTP ${response.status}`);
    }
    return response.status === 204 ? null : response.json();
  };
  const failed = (error) => { state.textContent = error.message; };
  shareMenu.addEventListener("toggle", () => {
    if (shareMenu.open) request("GET").then((share) => showShare(share)).catch(failed);
  });
  create.addEventListener("click", () =>
    request("POST").then((share) => { showShare(share); link.select(); }).catch(failed));
  copy.addEventListener("click", async () => {
    link.select();
    try {
      await navigator.clipboard.writeText(link.value);
      state.textContent = "Link copied.";
    } catch {
      state.textContent = "Copy the selected link.";
    }
  });
  revoke.addEventListener("click", () =>
    request("DELETE").then(() => showShare(null, "Link revoked: it opens nothing now.")).catch(failed));
}

// The chat's own settings; an empty field goes back to the site's default (null).
document.getElementById("settings-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = event.target.elements;
  const number = (field) => (field.value.trim() === "" ? null : Number(field.value));
  try {
    await api("PATCH", `/api/chats/${chatId}`, {
      system_prompt: fields.system_prompt.value.trim() === "" ? null : fields.system_prompt.value,
      temperature: number(fields.temperature),
      max_tokens: number(fields.max_tokens),
    });
    status.textContent = "Settings saved.";
    document.getElementById("chat-settings").open = false;
  } catch (error) {
    status.textContent = `Settings not saved: ${error.message}`;
  }
});

// Tags. The sidebar lists the caller's tags as filters (a tag's link shows only its chats;
// the one in use links back to them all); the chat's Tags menu adds and removes its own,
// and the list's entry and the filters follow without a reload.
const tagFilters = document.getElementById("tag-filters");
function tagFilter(tag) {
  const active = tag.name.toLowerCase() === tagFilters.dataset.tag.toLowerCase();
  const params = new URLSearchParams();
  if (tagFilters.dataset.q) params.set("q", tagFilters.dataset.q);
  params.set("archived", tagFilters.dataset.archived);
  if (!active) params.set("tag", tag.name);
  const link = element("a", "tag-filter", tag.name);
  link.href = `?${params}`;
  if (active) {
    link.setAttribute("aria-current", "true");
    link.title = "Show all chats again";
  }
  if (tag.chats !== null) link.append(element("span", "count", ` ${tag.chats}`));
  return link;
}
async function loadTags() {
  const response = await fetch(`/api/chats/tags?archived=${tagFilters.dataset.archived}`);
  if (!response.ok) return;
  const tags = await response.json();
  const links = tags.map(tagFilter);
  if (tagFilters.dataset.tag && !links.some((link) => link.hasAttribute("aria-current"))) {
    links.unshift(tagFilter({ name: tagFilters.dataset.tag, chats: null }));  // on no chat now
  }
  tagFilters.replaceChildren(...links);
  document.getElementById("tag-suggestions")?.replaceChildren(...tags.map((tag) => {
    const option = element("option");
    option.value = tag.name;
    return option;
  }));
}
loadTags().catch(() => {});

const tagsMenu = document.getElementById("tags-menu");
if (tagsMenu) {
  const chips = document.getElementById("chat-tags");
  const input = document.getElementById("tag-input");
  const note = document.getElementById("tag-note");
  let tags = [...chips.children].map((item) => item.dataset.tag);
  const showTags = () => {
    chips.replaceChildren(...tags.map((name) => {
      const item = element("li");
      item.dataset.tag = name;
      const remove = element("button", "link", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove tag ${name}`);
      item.append(element("span", "", name), remove);
      return item;
    }));
    document.getElementById("tag-count").textContent = tags.length ? ` (${tags.length})` : "";
    const entry = document.querySelector(`.chat-list a[href="/c/${chatId}"]`);
    let line = entry?.querySelector(".chat-tags");
    if (entry && !line && tags.length) entry.append(line = element("span", "chat-tags"));
    if (line && tags.length) line.textContent = tags.join(" · ");
    else line?.remove();
  };
  const saveTags = async (wanted) => {
    try {
      const chat = await (await api("PATCH", `/api/chats/${chatId}`, { tags: wanted })).json();
      tags = chat.tags;
      note.textContent = "";
      showTags();
      await loadTags();
      return true;
    } catch (error) {
      note.textContent = error.message;
      return false;
    }
  };
  document.getElementById("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (name && await saveTags([...tags, name])) input.value = "";
  });
  chips.addEventListener("click", (event) => {
    const item = event.target.closest("button")?.closest("li");
    if (item) saveTags(tags.filter((name) => name !== item.dataset.tag));
  });
}

// On a phone the chat list is a drawer: "Chats" opens it; the backdrop, Escape or a chat
// chosen closes it.
const drawerToggle = document.getElementById("drawer-toggle");
function setDrawer(open) {
  document.body.classList.toggle("drawer-open", open);
  drawerToggle.setAttribute("aria-expanded", String(open));
  document.getElementById("drawer-backdrop").hidden = !open;
  if (open) document.querySelector("#chat-drawer a, #chat-drawer input")?.focus();
}
drawerToggle.addEventListener("click", () =>
  setDrawer(!document.body.classList.contains("drawer-open")));
document.getElementById("drawer-backdrop").addEventListener("click", () => setDrawer(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("drawer-open")) {
    setDrawer(false);
    drawerToggle.focus();
  }
});

if (!chatId) offerPresets(model).catch(() => {});  // a new chat may start from a preset

// The composer is inert until this script has wired it (a keypress before would be lost).
sendButton.disabled = false;
document.documentElement.dataset.ready = "";
