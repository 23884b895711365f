// Calls to the journey REST API with the page's session: the workspace in
// X-Workspace and the CSRF token on writes (docs/api.md).

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const headers = document.body.getAttribute("hx-headers");
  try {
    return headers ? JSON.parse(headers)["X-CSRFToken"] : "";
  } catch {
    return "";
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function createApi(workspace) {
  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-Workspace": workspace,
        "X-CSRFToken": csrfToken(),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  return {
    put: (url, body) => call("PUT", url, body),
    post: (url, body) => call("POST", url, body),
    get: (url) => call("GET", url),
  };
}

// Saves the draft a moment after the last change, one request at a time; a 409 (someone
// else saved since) stops saving and says so, overwriting nothing.
export class DraftSaver {
  constructor({ api, url, revision, snapshot, onState, delay = 800 }) {
    Object.assign(this, { api, url, revision, snapshot, onState, delay });
    this.timer = null;
    this.running = null;
    this.pending = false;
    this.stopped = false;
    this.lastSaved = JSON.stringify(snapshot());
  }

  changed() {
    if (this.stopped) return;
    this.onState("dirty");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), this.delay);
  }

  async save() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (this.running) {
      this.pending = true;
      return this.running;
    }
    const body = this.snapshot();
    const text = JSON.stringify(body);
    if (text === this.lastSaved) {
      this.onState("saved");
      return;
    }
    this.onState("saving");
    this.running = this.api
      .put(this.url, { ...body, base_revision: this.revision })
      .then((draft) => {
        this.revision = draft.revision;
        this.lastSaved = text;
        this.onState(this.pending ? "dirty" : "saved");
      })
      .catch((error) => {
        if (error.status === 409) {
          this.stopped = true;
          this.onState("conflict", error.message);
        } else {
          this.onState("error", error.message);
        }
      })
      .finally(() => {
        this.running = null;
        if (this.pending && !this.stopped) {
          this.pending = false;
          this.save();
        }
      });
    return this.running;
  }
}
