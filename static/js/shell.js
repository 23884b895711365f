// The app shell's small behaviours. Every page works without this module; it adds
// the "g then letter" jumps, the "?" shortcuts overlay, closing of <details> menus,
// toast dismissal, copy buttons, confirm prompts and a few form niceties.

const SEQUENCE_TIMEOUT_MS = 1500;
const COPIED_LABEL_MS = 1600;

// ---------------------------------------------------------------- helpers

function isTyping(target) {
  if (!(target instanceof Element)) return false;
  return target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']") !== null;
}

function openMenus() {
  return [...document.querySelectorAll("details[data-menu][open]")];
}

function closeMenus({ except = null, restoreFocus = false } = {}) {
  for (const menu of openMenus()) {
    if (menu === except) continue;
    menu.open = false;
    if (restoreFocus) menu.querySelector("summary")?.focus();
  }
}

function shortcutsDialog() {
  return document.getElementById("shortcuts-dialog");
}

function showShortcuts() {
  const dialog = shortcutsDialog();
  if (!dialog || dialog.open) return;
  closeMenus();
  dialog.showModal();
}

// ---------------------------------------------------------------- "g" sequences

let sequenceTimer = null;
let sequenceHint = null;

function startSequence() {
  clearTimeout(sequenceTimer);
  if (!sequenceHint) {
    sequenceHint = document.createElement("div");
    sequenceHint.className = "shortcut-pending";
    sequenceHint.setAttribute("role", "status");
    sequenceHint.innerHTML = "<kbd>G</kbd><span>then J, S, C, P, A or ,</span>";
    document.body.append(sequenceHint);
  }
  sequenceHint.hidden = false;
  sequenceTimer = setTimeout(endSequence, SEQUENCE_TIMEOUT_MS);
}

function endSequence() {
  clearTimeout(sequenceTimer);
  sequenceTimer = null;
  if (sequenceHint) sequenceHint.hidden = true;
}

function jumpTo(key) {
  // The rail only renders the areas this member may open, so a missing link means "no access".
  const link = [...document.querySelectorAll(".rail a[data-shortcut]")].find((a) => a.dataset.shortcut === key);
  if (link) window.location.assign(link.href);
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    endSequence();
    if (openMenus().length) {
      event.preventDefault();
      closeMenus({ restoreFocus: true });
    }
    return;
  }
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (isTyping(event.target)) return;
  if (shortcutsDialog()?.open) return;

  if (sequenceTimer !== null) {
    endSequence();
    if (event.key.length === 1) {
      event.preventDefault();
      jumpTo(event.key.toLowerCase());
    }
    return;
  }
  if (event.key === "g" || event.key === "G") {
    event.preventDefault();
    startSequence();
  } else if (event.key === "?") {
    event.preventDefault();
    showShortcuts();
  }
});

// ---------------------------------------------------------------- menus

// One open menu at a time. "toggle" does not bubble, so listen in the capture phase.
document.addEventListener(
  "toggle",
  (event) => {
    const menu = event.target;
    if (menu instanceof HTMLDetailsElement && menu.matches("[data-menu]") && menu.open) {
      closeMenus({ except: menu });
    }
  },
  true,
);

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;

  for (const menu of openMenus()) {
    if (!menu.contains(target)) menu.open = false;
  }

  if (target.closest("[data-shortcuts-open]")) {
    event.preventDefault();
    showShortcuts();
    return;
  }

  const dismiss = target.closest("[data-dismiss='toast']");
  if (dismiss) {
    dismiss.closest(".toast")?.remove();
    return;
  }

  const copyButton = target.closest("[data-copy]");
  if (copyButton) {
    event.preventDefault();
    copyFrom(copyButton);
  }
});

// Clicking the dialog's backdrop closes it (the click lands on the <dialog> itself).
shortcutsDialog()?.addEventListener("click", (event) => {
  if (event.target === event.currentTarget) event.currentTarget.close();
});

// ---------------------------------------------------------------- copy buttons

async function copyFrom(button) {
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent.trim();
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // No clipboard API (plain http on a LAN host): fall back to a selection copy.
    if (typeof source.select === "function") {
      source.select();
    } else {
      const range = document.createRange();
      range.selectNodeContents(source);
      window.getSelection()?.removeAllRanges();
      window.getSelection()?.addRange(range);
    }
    copied = document.execCommand("copy");
  }
  const label = button.querySelector("[data-copy-label]") ?? button;
  const original = label.dataset.original ?? label.textContent;
  label.dataset.original = original;
  label.textContent = copied ? "Copied" : "Press Ctrl+C";
  setTimeout(() => {
    label.textContent = original;
  }, COPIED_LABEL_MS);
}

// ---------------------------------------------------------------- forms

// <form data-confirm="Remove ada?">: ask before a destructive POST.
document.addEventListener(
  "submit",
  (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true,
);

// <select data-autosubmit> (or a checkbox): submit its form on change. Pages carry no
// inline handlers (onchange=...): the Content-Security-Policy refuses them.
document.addEventListener("change", (event) => {
  const target = event.target;
  if (
    (target instanceof HTMLSelectElement || target instanceof HTMLInputElement) &&
    target.hasAttribute("data-autosubmit")
  ) {
    target.form?.requestSubmit();
  }
});

// <form data-save-on-change>: its submit button stays disabled until a control differs
// from what the page was rendered with.
function syncDirtyState(form) {
  const dirty = [...form.elements].some((element) => {
    if (element instanceof HTMLSelectElement) {
      return [...element.options].some((option) => option.selected !== option.defaultSelected);
    }
    if (element instanceof HTMLInputElement && element.type !== "hidden") {
      return element.value !== element.defaultValue;
    }
    return false;
  });
  form.classList.toggle("is-dirty", dirty);
  for (const button of form.querySelectorAll("button[type='submit']")) button.disabled = !dirty;
}

for (const form of document.querySelectorAll("form[data-save-on-change]")) {
  syncDirtyState(form);
  form.addEventListener("input", () => syncDirtyState(form));
  form.addEventListener("change", () => syncDirtyState(form));
}

// <select data-enabled-when="kind=secret">: only usable when the named control in the
// same form has that value (the server validates the same rule).
function syncDependents(form) {
  for (const dependent of form.querySelectorAll("[data-enabled-when]")) {
    const [name, value] = dependent.dataset.enabledWhen.split("=");
    const enabled = form.elements.namedItem(name)?.value === value;
    dependent.disabled = !enabled;
    dependent.closest(".field")?.classList.toggle("field--inactive", !enabled);
  }
}

for (const form of document.querySelectorAll("form")) {
  if (!form.querySelector("[data-enabled-when]")) continue;
  syncDependents(form);
  form.addEventListener("change", () => syncDependents(form));
}
