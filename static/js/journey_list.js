// The journeys list: the "New journey" dialog (open, close, and a template's name as
// the name field's placeholder). Archive's confirmation is shell.js's data-confirm.

const dialog = document.getElementById("new-journey");

if (dialog) {
  const nameField = dialog.querySelector("input[name=name]");

  const showPlaceholder = () => {
    const picked = dialog.querySelector("input[name=template]:checked");
    nameField.placeholder = picked?.dataset.defaultName || "Name the journey";
  };

  for (const opener of document.querySelectorAll("[data-open-dialog='new-journey']")) {
    opener.addEventListener("click", () => {
      dialog.showModal();
      nameField.focus();
    });
  }
  for (const closer of dialog.querySelectorAll("[data-close-dialog]")) {
    closer.addEventListener("click", () => dialog.close());
  }
  // A click on the backdrop lands on the <dialog> itself.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener("change", (event) => {
    if (event.target.name === "template") showPlaceholder();
  });
  showPlaceholder();
  // journey_new answered with errors: show them where they were made.
  if (dialog.hasAttribute("data-open-on-load")) dialog.showModal();
}
