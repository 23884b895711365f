// The inspector's event-name autocomplete: fills the <datalist> of an event field
// from /w/<slug>/journeys/event-names/?q= while the marketer types. Everything else in
// the panel is htmx (templates/journeys/inspector/).

const timers = new WeakMap();

async function suggest(input) {
  const form = input.closest("form[data-event-names-url]");
  const list = input.list;
  if (!form || !list) return;
  const url = new URL(form.dataset.eventNamesUrl, window.location.origin);
  url.searchParams.set("q", input.value.trim());
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const { names } = await response.json();
  list.replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), { value: name })));
}

document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || !input.matches("[data-event-names]")) return;
  clearTimeout(timers.get(input));
  timers.set(input, setTimeout(() => suggest(input).catch(() => {}), 150));
});
