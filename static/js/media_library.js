// The media library: drop files anywhere on the page (or pick them) and each one is
// uploaded on its own request with its own progress bar. The server sniffs and checks
// every file; a refused file shows the server's reason. An accepted file's card joins
// the grid and polls (htmx) until its thumbnail and metadata are ready.

const library = document.querySelector("[data-media-library]");

if (library && library.hasAttribute("data-can-upload")) {
  const overlay = library.querySelector("[data-drop-overlay]");
  const queue = library.querySelector("[data-upload-queue]");
  const input = document.querySelector("[data-upload-input]");
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]")?.value
    ?? JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  let depth = 0;

  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");

  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    uploadAll([...event.dataTransfer.files]);
  });
  input?.addEventListener("change", () => {
    uploadAll([...input.files]);
    input.value = "";
  });

  async function uploadAll(files) {
    // Two at a time: fast on a LAN, and a slow link is not flooded.
    const pending = [...files];
    const worker = async () => {
      while (pending.length) await upload(pending.shift());
    };
    await Promise.all([worker(), worker()]);
  }

  function upload(file) {
    const row = document.createElement("li");
    row.className = "upload-row";
    row.innerHTML =
      '<span class="upload-name"></span><div class="bar"><span></span></div><span class="upload-status muted">Waiting…</span>';
    row.querySelector(".upload-name").textContent = file.name;
    queue.prepend(row);
    const bar = row.querySelector(".bar span");
    const status = row.querySelector(".upload-status");

    return new Promise((resolve) => {
      const body = new FormData();
      body.append("file", file, file.name);
      if (library.dataset.folder) body.append("folder", library.dataset.folder);
      const request = new XMLHttpRequest();
      request.open("POST", library.dataset.uploadUrl);
      request.setRequestHeader("X-CSRFToken", csrf);
      request.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((100 * event.loaded) / event.total);
        bar.style.width = `${percent}%`;
        status.textContent = `Uploading ${percent}%`;
      });
      request.addEventListener("load", () => {
        let answer = {};
        try {
          answer = JSON.parse(request.responseText);
        } catch {
          answer = { error: `The server answered ${request.status}.` };
        }
        if (request.status === 201) {
          row.classList.add("upload-row--done");
          status.textContent = "Uploaded";
          addCard(answer.card);
          setTimeout(() => row.remove(), 2500);
        } else {
          row.classList.add("upload-row--error");
          status.textContent = answer.error ?? `Refused (${request.status})`;
          status.classList.remove("muted");
          row.append(dismissButton(row));
        }
        resolve();
      });
      request.addEventListener("error", () => {
        row.classList.add("upload-row--error");
        status.textContent = "The connection failed; nothing was stored. Try again.";
        row.append(dismissButton(row));
        resolve();
      });
      request.send(body);
    });
  }

  function dismissButton(row) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "icon-button";
    button.setAttribute("aria-label", "Dismiss");
    button.textContent = "×";
    button.addEventListener("click", () => row.remove());
    return button;
  }

  function addCard(html) {
    const grid = library.querySelector("[data-asset-grid]");
    library.querySelector("[data-drop-hint]")?.remove();
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const card = template.content.firstElementChild;
    grid.prepend(card);
    window.htmx?.process(card);
  }
}
