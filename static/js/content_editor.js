// The template editor: locale tabs (add / remove translations), the profile picker of
// the preview, the image picker, Ctrl+S, and a warning before leaving unsaved changes.
// The preview itself is htmx: the form posts to the preview URL on every input.

const form = document.querySelector("form[data-editor]");

if (form) {
  const tabs = form.querySelector("[data-locale-tabs]");
  let dirty = false;

  const panels = () => [...form.querySelectorAll("[data-locale-panel]")];
  const refreshPreview = () => window.htmx?.trigger(form, "change");

  function showLocale(code) {
    for (const panel of panels()) panel.hidden = panel.dataset.localePanel !== code;
    for (const tab of tabs.querySelectorAll("[data-locale-tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.localeTab === code));
    }
    // Preview what is being edited.
    const select = form.querySelector("[data-preview-locale]");
    if (select && [...select.options].some((option) => option.value === code)) {
      select.value = code;
      refreshPreview();
    }
  }

  tabs?.addEventListener("click", (event) => {
    const tab = event.target.closest("[data-locale-tab]");
    if (tab) showLocale(tab.dataset.localeTab);
  });

  // A new translation starts as a copy of the default content, renamed f.<code>.<field>.
  function addLocale(raw) {
    const code = normalizeLocale(raw);
    if (!code || !/^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$/.test(code)) {
      window.alert(`“${raw}” is not a locale tag like fr or fr-CA.`);
      return;
    }
    if (panels().some((panel) => panel.dataset.localePanel === code)) {
      showLocale(code);
      return;
    }
    const source = form.querySelector('[data-locale-panel="default"]');
    const panel = source.cloneNode(true);
    panel.dataset.localePanel = code;
    panel.querySelector('input[name="locale"]').value = code;
    for (const element of panel.querySelectorAll("[name^='f.default.']")) {
      const field = element.name.slice("f.default.".length);
      const original = source.querySelector(`[name="f.default.${field}"]`);
      element.name = element.id = `f.${code}.${field}`;
      if (original) element.value = original.value;
    }
    for (const label of panel.querySelectorAll("label[for^='f.default.']")) {
      label.htmlFor = label.htmlFor.replace("f.default.", `f.${code}.`);
    }
    for (const button of panel.querySelectorAll("[data-pick-asset]")) {
      button.dataset.pickAsset = button.dataset.pickAsset.replace("f.default.", `f.${code}.`);
    }
    for (const error of panel.querySelectorAll(".field-errors")) error.remove();
    panel.querySelector("legend").textContent = `Content for ${code}`;
    const note = document.createElement("p");
    note.className = "muted locale-note";
    note.textContent = `Shown to profiles whose locale is ${code}. Translate the fields below, then save.`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn btn--ghost btn--sm";
    remove.dataset.removeLocale = code;
    remove.textContent = "Remove this translation";
    note.append(" ", remove);
    panel.querySelector("legend").after(note);
    panels().at(-1).after(panel);

    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "tab";
    tab.setAttribute("role", "tab");
    tab.dataset.localeTab = code;
    tab.textContent = code;
    tabs.append(tab);

    const select = form.querySelector("[data-preview-locale]");
    if (select) select.add(new Option(code, code));
    markDirty();
    showLocale(code);
  }

  function normalizeLocale(raw) {
    const parts = raw.trim().replace(/_/g, "-").split("-").filter(Boolean);
    if (!parts.length) return "";
    return parts
      .map((part, index) => {
        if (index === 0) return part.toLowerCase();
        if (part.length === 4) return part[0].toUpperCase() + part.slice(1).toLowerCase();
        return part.toUpperCase();
      })
      .join("-");
  }

  const newLocale = form.querySelector("[data-new-locale]");
  form.querySelector("[data-add-locale]")?.addEventListener("click", () => {
    addLocale(newLocale.value);
    newLocale.value = "";
  });
  newLocale?.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      addLocale(newLocale.value);
      newLocale.value = "";
    }
  });

  form.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove-locale]");
    if (!remove) return;
    const code = remove.dataset.removeLocale;
    if (!window.confirm(`Remove the ${code} translation? It is gone once you save.`)) return;
    form.querySelector(`[data-locale-panel="${code}"]`)?.remove();
    tabs.querySelector(`[data-locale-tab="${code}"]`)?.remove();
    form.querySelector(`[data-preview-locale] option[value="${code}"]`)?.remove();
    markDirty();
    showLocale("default");
  });

  // ------------------------------------------------------------ preview profile

  const search = form.querySelector("[data-profile-search]");
  const profileId = form.querySelector("[data-profile-id]");
  const options = form.querySelector("[data-profile-options]");
  let picked = false;
  options?.addEventListener("click", (event) => {
    const item = event.target.closest("[data-pick-profile]");
    if (!item) return;
    profileId.value = item.dataset.pickProfile;
    search.value = item.dataset.label;
    options.innerHTML = "";
    picked = true;
    refreshPreview();
  });
  // A search answer that arrives after the pick does not reopen the list.
  options?.addEventListener("htmx:beforeSwap", (event) => {
    if (picked) event.detail.shouldSwap = false;
  });
  search?.addEventListener("input", () => {
    picked = false;
  });
  document.addEventListener("click", (event) => {
    if (options && !event.target.closest(".field--compact")) options.innerHTML = "";
  });
  search?.addEventListener("keydown", (event) => {
    if (event.key === "Escape") options.innerHTML = "";
    if (event.key === "Enter") {
      event.preventDefault();
      options.querySelector("[data-pick-profile]:not([data-pick-profile=''])")?.click();
    }
  });
  // Typing in the search box is not an edit of the template.
  search?.addEventListener("input", (event) => event.stopPropagation());

  // ------------------------------------------------------------ image picker

  const picker = document.getElementById("asset-picker");
  const pickerBody = document.getElementById("asset-picker-body");
  let pickTarget = null;

  form.addEventListener("click", (event) => {
    const button = event.target.closest("[data-pick-asset]");
    if (!button) return;
    pickTarget = { input: document.getElementById(button.dataset.pickAsset), mode: button.dataset.insert };
    window.htmx.ajax("GET", form.dataset.pickerUrl + "&kind=image", { target: pickerBody, swap: "innerHTML" });
    picker.showModal();
  });
  picker?.addEventListener("click", (event) => {
    if (event.target === picker || event.target.closest("[data-close-dialog]")) {
      picker.close();
      return;
    }
    const chosen = event.target.closest("[data-pick-asset-id]");
    if (!chosen || !pickTarget?.input) return;
    const { url, alt, width } = chosen.dataset;
    if (pickTarget.mode === "img") {
      const size = width ? ` width="${Math.min(Number(width), 600)}"` : "";
      insertAtCursor(
        pickTarget.input,
        `<img src="${url}" alt="${escapeAttribute(alt)}"${size} style="display:block;max-width:100%;height:auto;border:0">`,
      );
    } else {
      pickTarget.input.value = url;
    }
    pickTarget.input.dispatchEvent(new Event("input", { bubbles: true }));
    picker.close();
  });

  function escapeAttribute(text) {
    return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  }

  function insertAtCursor(field, text) {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText(text, start, end, "end");
    field.focus();
  }

  // ------------------------------------------------------------ dialogs, save, leave

  for (const opener of document.querySelectorAll("[data-open-dialog]")) {
    opener.addEventListener("click", () => document.getElementById(opener.dataset.openDialog)?.showModal());
  }
  for (const closer of document.querySelectorAll("dialog [data-close-dialog]")) {
    closer.addEventListener("click", () => closer.closest("dialog").close());
  }

  function markDirty() {
    dirty = true;
  }
  form.addEventListener("input", (event) => {
    if (event.target.closest("[data-locale-panel]")) markDirty();
  });
  form.addEventListener("submit", () => {
    dirty = false;
  });
  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      if (form.querySelector("fieldset:not([disabled])")) form.requestSubmit();
    }
  });
}
