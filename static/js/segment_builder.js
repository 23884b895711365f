// The segment builder: marks the rule the preview's error is about, keeps Enter from
// saving half-typed rules, and saves with Ctrl+S. Everything else is htmx.

const form = document.getElementById("segment-builder");

function markError() {
  const preview = document.getElementById("segment-preview");
  if (!form || !preview) return;
  for (const node of form.querySelectorAll(".rule--invalid, .rule-group--invalid")) {
    node.classList.remove("rule--invalid", "rule-group--invalid");
  }
  for (const message of form.querySelectorAll("[data-rule-error]")) {
    message.hidden = true;
    message.textContent = "";
  }
  const path = preview.dataset.errorPath;
  if (!path) return;
  const node = form.querySelector(`[data-path="${CSS.escape(path)}"]`);
  if (!node) return;
  node.classList.add(node.classList.contains("rule") ? "rule--invalid" : "rule-group--invalid");
  const message = node.querySelector(":scope > [data-rule-error]");
  const text = preview.querySelector("[data-testid='preview-error'] span");
  if (message && text) {
    message.textContent = text.textContent;
    message.hidden = false;
  }
}

if (form) {
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches("input:not([type=submit])")) {
      event.preventDefault();
    }
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      form.requestSubmit(form.querySelector("[name=save]"));
    }
  });
  document.body.addEventListener("htmx:afterSettle", markError);
  markError();
}
