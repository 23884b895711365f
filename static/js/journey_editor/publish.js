// The publish dialog: what changes against the live version, what happens to the
// people already in the journey (stay on their version, or move to the new one with
// a target for each removed node), then the engine's publish.

function nodeText(node) {
  return `${node.id} (${node.type})`;
}

export function diffDefinitions(live, draft) {
  const before = new Map((live?.nodes || []).map((node) => [node.id, node]));
  const after = new Map(draft.nodes.map((node) => [node.id, node]));
  const added = [...after.keys()].filter((id) => !before.has(id));
  const removed = [...before.keys()].filter((id) => !after.has(id));
  const changed = [...after.keys()].filter(
    (id) => before.has(id) && JSON.stringify(before.get(id)) !== JSON.stringify(after.get(id)),
  );
  const edgeKey = (edge) => `${edge.source}:${edge.port || "next"}>${edge.target}`;
  const edgesBefore = new Set((live?.edges || []).map(edgeKey));
  const edgesAfter = new Set(draft.edges.map(edgeKey));
  const rewired = [...edgesAfter].filter((key) => !edgesBefore.has(key)).length
    + [...edgesBefore].filter((key) => !edgesAfter.has(key)).length;
  return { added, removed, changed, rewired, before, after };
}

export function openPublish({ api, data, definition }) {
  const dialog = document.getElementById("je-publish");
  const body = document.getElementById("je-publish-body");
  const diff = diffDefinitions(data.live, definition);
  body.innerHTML = "";

  const intro = document.createElement("p");
  intro.textContent = data.live
    ? `Version ${data.journey.liveVersion + 1} replaces version ${data.journey.liveVersion}, which is live now.`
    : "This makes the journey live: people who match its trigger from now on enter it.";
  body.append(intro);

  if (data.live) {
    const list = document.createElement("ul");
    list.className = "je-diff";
    list.dataset.testid = "publish-diff";
    const line = (cls, text) => {
      const item = document.createElement("li");
      item.className = cls;
      item.textContent = text;
      list.append(item);
    };
    for (const id of diff.added) line("added", `+ ${nodeText(diff.after.get(id))} added`);
    for (const id of diff.removed) line("removed", `− ${nodeText(diff.before.get(id))} removed`);
    for (const id of diff.changed) line("changed", `~ ${nodeText(diff.after.get(id))} changed`);
    if (diff.rewired) line("changed", `~ ${diff.rewired} connection${diff.rewired === 1 ? "" : "s"} changed`);
    if (!list.children.length) line("", "No changes to the nodes or connections.");
    body.append(list);

    const choice = document.createElement("fieldset");
    choice.className = "je-choice";
    const legend = document.createElement("legend");
    legend.textContent = "People already in the journey";
    choice.append(legend);
    choice.append(radio("stay", "Stay on the version they entered (safest)", true));
    choice.append(radio("migrate", "Move to the new version: each continues at the node with the same id", false));
    body.append(choice);

    if (diff.removed.length) {
      const map = document.createElement("div");
      map.className = "je-map";
      map.hidden = true;
      map.dataset.testid = "publish-map";
      for (const id of diff.removed) {
        const label = document.createElement("label");
        label.textContent = `Who is at ${id} goes to`;
        label.htmlFor = `je-map-${id}`;
        const select = document.createElement("select");
        select.className = "input input--sm";
        select.id = `je-map-${id}`;
        select.dataset.removed = id;
        select.append(new Option("choose a node", ""));
        for (const node of definition.nodes) if (node.type !== "trigger") select.append(new Option(node.id, node.id));
        map.append(label, select);
      }
      body.append(map);
      choice.addEventListener("change", () => {
        map.hidden = choice.querySelector("input:checked").value !== "migrate";
      });
    }
  }
  const error = document.createElement("p");
  error.className = "field-errors";
  error.dataset.testid = "publish-error";
  error.hidden = true;
  body.append(error);

  const confirm = dialog.querySelector("[data-action=publish-confirm]");
  const fresh = confirm.cloneNode(true);
  confirm.replaceWith(fresh);
  fresh.addEventListener("click", async () => {
    const inFlight = body.querySelector("input[name=in_flight]:checked")?.value || "stay";
    const nodeMap = {};
    for (const select of body.querySelectorAll("select[data-removed]")) {
      if (select.value) nodeMap[select.dataset.removed] = select.value;
    }
    fresh.disabled = true;
    try {
      const version = await api.post(data.urls.publish, { in_flight: inFlight, node_map: nodeMap });
      dialog.close();
      const badge = document.querySelector("[data-testid=journey-status]");
      badge.textContent = `Live · v${version.number}`;
      badge.className = "badge badge--success";
      data.journey.liveVersion = version.number;
      data.journey.status = "live";
      data.live = structuredClone(definition);
      document.dispatchEvent(new CustomEvent("journey:published", { detail: version }));
    } catch (problem) {
      const details = problem.body?.definition;
      error.textContent = Array.isArray(details)
        ? details.map((d) => (d.node ? `${d.node}: ${d.message}` : d.message)).join(" · ")
        : problem.message;
      error.hidden = false;
    } finally {
      fresh.disabled = false;
    }
  });
  dialog.showModal();
}

function radio(value, text, checked) {
  const label = document.createElement("label");
  const input = document.createElement("input");
  input.type = "radio";
  input.name = "in_flight";
  input.value = value;
  input.checked = checked;
  label.append(input, document.createTextNode(text));
  return label;
}
