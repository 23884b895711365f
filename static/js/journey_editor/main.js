// The visual journey builder: palette, canvas, inspector, autosave, validate,
// simulate and publish. The page's data comes from journeys/editor_views.py.

import { createApi, csrfToken, DraftSaver } from "./api.js";
import {
  applyNode,
  autoLayout,
  createGraph,
  EDGE_LOOK,
  definitionOf,
  iconSvg,
  layoutOf,
  look,
  nodeMetadata,
  setPalette,
  showProblems,
} from "./canvas.js";
import { openPublish } from "./publish.js";
import { connectLive } from "../live_socket.js";

const root = document.getElementById("journey-editor");
const data = JSON.parse(document.getElementById("journey-editor-data").textContent);
const readOnly = !data.canEdit;
const api = createApi(data.workspace);
const paletteItems = {};
for (const group of data.palette) for (const item of group.items) paletteItems[item.key] = item;
setPalette(data.palette);

const { graph, dnd, history, selection } = createGraph({
  container: document.getElementById("je-canvas"),
  minimap: document.getElementById("je-minimap"),
  readOnly,
});
window.journeyEditor = { graph, data, history, selection }; // for tests and the console

// --------------------------------------------------------------------------- load

function load() {
  const layout = (data.draft.layout && data.draft.layout.nodes) || {};
  const definition = data.draft.definition;
  let column = 0;
  for (const node of definition.nodes) {
    const meta = data.meta[node.id] || { summary: "", ports: ["next"], look: "exit" };
    const position = layout[node.id] || { x: 80 + 344 * column++, y: 80 };
    graph.addNode({ ...nodeMetadata(node, meta), x: position.x, y: position.y }, { ignoreHistory: true });
  }
  for (const edge of definition.edges) {
    if (!graph.getCellById(edge.source) || !graph.getCellById(edge.target)) continue;
    graph.addEdge(
      {
        source: { cell: edge.source, port: `out:${edge.port || "next"}` },
        target: { cell: edge.target, port: "in" },
        ...structuredClone(EDGE_LOOK),
      },
      { ignoreHistory: true },
    );
  }
  history.clean();
  if (definition.nodes.length) fitReadable();
  else graph.zoomTo(1);
}

// The whole journey when it fits at a readable size; otherwise readable, from its start.
function fitReadable() {
  graph.zoomToFit({ padding: 48, maxScale: 1, minScale: 0.6 });
  const first = graph.getNodes().sort((a, b) => a.getPosition().x - b.getPosition().x)[0];
  if (first && graph.zoom() <= 0.6) {
    graph.positionCell(first, "left");
    const { tx, ty } = graph.translate();
    graph.translate(tx + 48, ty);
  }
}

// --------------------------------------------------------------------------- saving

const saveState = root.querySelector("[data-testid=save-state]");
const STATE_TEXT = {
  saved: "Saved",
  dirty: "Unsaved changes",
  saving: "Saving…",
};

const saver = new DraftSaver({
  api,
  url: data.urls.draft,
  revision: data.draft.revision,
  snapshot: () => ({ definition: definitionOf(graph, data.draft.definition.settings), layout: layoutOf(graph) }),
  onState(state, message) {
    saveState.dataset.state = state;
    if (state === "conflict") {
      saveState.textContent = "Not saved: someone else changed this journey";
      saveState.title = message;
      showBanner(message);
    } else if (state === "error") {
      saveState.textContent = "Not saved";
      saveState.title = message || "";
    } else {
      saveState.textContent = STATE_TEXT[state];
      saveState.title = "";
    }
  },
});

function showBanner(message) {
  const panel = document.getElementById("je-problems");
  panel.hidden = false;
  panel.dataset.valid = "false";
  panel.innerHTML = "";
  const header = document.createElement("header");
  header.textContent = "Your changes were not saved";
  const text = document.createElement("p");
  text.style.padding = "8px 12px";
  text.style.margin = "0";
  text.textContent = message;
  const reload = document.createElement("button");
  reload.className = "btn btn--sm";
  reload.style.margin = "0 12px 12px";
  reload.textContent = "Reload";
  reload.addEventListener("click", () => window.location.reload());
  panel.append(header, text, reload);
}

// --------------------------------------------------------------------------- palette

function buildPalette() {
  const container = root.querySelector(".je-palette");
  for (const group of data.palette) {
    const heading = document.createElement("h2");
    heading.textContent = group.title;
    container.append(heading);
    for (const item of group.items) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "je-palette-item";
      button.dataset.paletteKey = item.key;
      button.disabled = readOnly;
      const style = look(item.key);
      button.innerHTML = `<span class="je-swatch" style="background:${style.color}">${iconSvg(item.icon, 14)}</span>`;
      const label = document.createElement("span");
      label.textContent = item.title;
      button.append(label);
      button.addEventListener("mousedown", (event) => {
        if (readOnly || event.button !== 0) return;
        const node = graph.createNode(nodeMetadata({ ...item.node, id: "palette-preview" }, {
          summary: item.summary, ports: item.ports, look: item.key,
        }));
        dnd.start(node, event);
      });
      // Keyboard users: Enter adds the node in the middle of the view.
      button.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        const center = graph.clientToLocal(graph.container.getBoundingClientRect().left + 300, graph.container.getBoundingClientRect().top + 200);
        addFromPalette(item, center.x, center.y);
      });
      container.append(button);
    }
  }
}

// Dropped (or added by keyboard): the real node, with a readable id.
dnd.options.getDropNode = (dragged) => {
  const item = paletteItems[dragged.getData().look];
  const id = freshId(item.key);
  return graph.createNode(nodeMetadata({ ...item.node, id }, { summary: item.summary, ports: item.ports, look: item.key }));
};

function addFromPalette(item, x, y) {
  const id = freshId(item.key);
  const cell = graph.addNode({ ...nodeMetadata({ ...item.node, id }, { summary: item.summary, ports: item.ports, look: item.key }), x, y });
  select(cell);
  return cell;
}

function freshId(key) {
  const base = key.replace(/_/g, "-");
  let n = 1;
  while (graph.getCellById(`${base}-${n}`)) n += 1;
  return `${base}-${n}`;
}

// --------------------------------------------------------------------------- selection, inspector

let inspected = null;

function select(cell) {
  selection.clean();
  selection.select(cell);
}

function others(except) {
  return graph
    .getNodes()
    .filter((cell) => cell.id !== except)
    .map((cell) => ({ id: cell.id, type: cell.getData().node.type, summary: cell.getData().summary }));
}

function inspect(cell) {
  inspected = cell;
  delete document.getElementById("inspector").dataset.node;
  if (!cell) {
    document.getElementById("inspector").innerHTML = emptyInspector;
    return;
  }
  const node = { ...cell.getData().node, id: cell.id };
  window.htmx.ajax("POST", data.urls.inspector, {
    target: "#inspector",
    swap: "innerHTML",
    values: { node: JSON.stringify(node), others: JSON.stringify(others(cell.id)) },
    headers: { "X-CSRFToken": csrfToken() },
  });
}

const emptyInspector = document.getElementById("inspector").innerHTML;

// The inspector's fragment swaps itself (outerHTML) on every change; each swap ends
// with a fresh #inspector-result, read once.
let lastResult = null;
document.body.addEventListener("htmx:afterSettle", () => {
  const element = document.querySelector("#inspector #inspector-result");
  if (!element || element === lastResult) return;
  lastResult = element;
  const panel = document.getElementById("inspector");
  const result = JSON.parse(element.textContent);
  const cell = graph.getCellById(result.node.id);
  if (!cell) return;
  const before = JSON.stringify({ ...cell.getData().node, id: cell.id });
  if (!readOnly && JSON.stringify(result.node) !== before) {
    applyNode(graph, cell, result.node, result.summary, result.ports, lookOf(result.node));
  } else if (cell.getData().summary !== result.summary) {
    cell.setData({ summary: result.summary }, { ignoreHistory: true });
    cell.attr("summary/text", result.summary, { ignoreHistory: true });
  }
  showProblems(cell, result.valid ? [] : result.errors);
  // The panel is settled and live for this node (its controls are wired).
  panel.dataset.node = cell.id;
  panel.dataset.renders = String(Number(panel.dataset.renders || 0) + 1);
});

function lookOf(node) {
  if (node.type === "trigger") return `trigger_${node.trigger?.kind || "event"}`;
  if (node.type === "wait") {
    const kind = node.wait?.kind;
    return kind === "duration" ? "wait_duration" : kind === "until_time" || kind === "until_date" ? "wait_time" : "wait_event";
  }
  if (node.type === "action") {
    const action = node.action || {};
    if (action.kind === "message") return action.channel;
    return { webhook: "webhook", update_attribute: "update_attribute" }[action.kind] || "segment_change";
  }
  return paletteItems[node.type] ? node.type : "exit";
}

graph.on("selection:changed", ({ selected }) => {
  const nodes = selected.filter((cell) => cell.isNode());
  inspect(nodes.length === 1 && selected.length === 1 ? nodes[0] : null);
});

// --------------------------------------------------------------------------- edits

function deleteSelected() {
  if (readOnly) return;
  const cells = selection.getSelectedCells();
  if (!cells.length) return;
  // A node and its edges go in one step: one undo brings them all back.
  graph.startBatch("delete");
  graph.removeCells(cells);
  graph.stopBatch("delete");
}

let clipboard = null;

function copySelected() {
  const nodes = selection.getSelectedCells().filter((cell) => cell.isNode());
  if (!nodes.length) return;
  const ids = new Set(nodes.map((cell) => cell.id));
  clipboard = {
    nodes: nodes.map((cell) => ({
      data: structuredClone(cell.getData()),
      position: cell.getPosition(),
      ports: cell.getPorts().filter((port) => port.group === "out").map((port) => port.id.slice(4)),
    })),
    edges: graph
      .getEdges()
      .filter((edge) => ids.has(edge.getSourceCellId()) && ids.has(edge.getTargetCellId()))
      .map((edge) => ({
        source: edge.getSourceCellId(),
        port: edge.getSourcePortId(),
        target: edge.getTargetCellId(),
      })),
    offset: 0,
  };
}

function paste() {
  if (readOnly || !clipboard) return;
  clipboard.offset += 48;
  const renamed = new Map();
  const added = [];
  graph.startBatch("paste");
  for (const { data: copied, position, ports } of clipboard.nodes) {
    const id = freshId(copied.look);
    renamed.set(copied.node.id, id);
    const node = { ...structuredClone(copied.node), id };
    const meta = { summary: copied.summary, ports, look: copied.look };
    added.push(graph.addNode({ ...nodeMetadata(node, meta), x: position.x + clipboard.offset, y: position.y + clipboard.offset }));
  }
  for (const edge of clipboard.edges) {
    graph.addEdge({
      source: { cell: renamed.get(edge.source), port: edge.port },
      target: { cell: renamed.get(edge.target), port: "in" },
      ...structuredClone(EDGE_LOOK),
    });
  }
  graph.stopBatch("paste");
  selection.clean();
  selection.select(added);
}

function typing(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "s") {
    event.preventDefault();
    saver.save();
    return;
  }
  if (typing(event) || document.querySelector("dialog[open]")) return;
  if (key === "delete" || key === "backspace") {
    event.preventDefault();
    deleteSelected();
  } else if (mod && key === "z" && event.shiftKey) {
    event.preventDefault();
    history.redo();
  } else if (mod && (key === "z" || key === "y")) {
    event.preventDefault();
    if (key === "y") history.redo();
    else history.undo();
  } else if (mod && key === "c") {
    copySelected();
  } else if (mod && key === "v") {
    event.preventDefault();
    paste();
  } else if (mod && key === "a") {
    event.preventDefault();
    selection.select(graph.getCells());
  } else if (event.shiftKey && key === "!") {
    graph.zoomToFit({ padding: 48, maxScale: 1 });
  } else if (event.shiftKey && key === "l") {
    autoLayout(graph);
  } else if (key === "+" || key === "=") {
    zoomBy(0.1);
  } else if (key === "-") {
    zoomBy(-0.1);
  }
});

function zoomBy(step) {
  const next = Math.min(2, Math.max(0.25, graph.zoom() + step));
  graph.zoomTo(next);
}

// --------------------------------------------------------------------------- toolbar

const buttons = Object.fromEntries(
  [...root.querySelectorAll("[data-action]")].map((button) => [button.dataset.action, button]),
);

function refreshHistoryButtons() {
  buttons.undo.disabled = readOnly || !history.canUndo();
  buttons.redo.disabled = readOnly || !history.canRedo();
}

graph.on("history:change", refreshHistoryButtons);
graph.on("scale", () => {
  root.querySelector("[data-testid=zoom]").textContent = `${Math.round(graph.zoom() * 100)}%`;
});

buttons.undo.addEventListener("click", () => history.undo());
buttons.redo.addEventListener("click", () => history.redo());
buttons["zoom-in"].addEventListener("click", () => zoomBy(0.1));
buttons["zoom-out"].addEventListener("click", () => zoomBy(-0.1));
buttons.fit.addEventListener("click", () => graph.zoomToFit({ padding: 48, maxScale: 1 }));
buttons.layout.addEventListener("click", () => {
  autoLayout(graph);
  fitReadable();
});
buttons.validate.addEventListener("click", () => validate());
buttons.settings.addEventListener("click", () => {
  window.htmx.ajax("POST", data.urls.settings, {
    target: "#je-settings-body",
    swap: "innerHTML",
    values: { settings: JSON.stringify(data.draft.definition.settings || {}) },
    headers: { "X-CSRFToken": csrfToken() },
  });
  document.getElementById("je-settings").showModal();
});

// Each answer of the settings form carries the settings it describes: kept in the
// draft (saved with the graph, one request), whether or not they are valid yet.
let lastSettings = null;
document.body.addEventListener("htmx:afterSettle", () => {
  const element = document.querySelector("#je-settings-body #journey-settings-result");
  if (!element || element === lastSettings) return;
  lastSettings = element;
  const result = JSON.parse(element.textContent);
  const before = JSON.stringify(data.draft.definition.settings || {});
  document.getElementById("je-settings-body").dataset.renders = String(Number(document.getElementById("je-settings-body").dataset.renders || 0) + 1);
  if (readOnly || JSON.stringify(result.settings) === before) return;
  data.draft.definition.settings = result.settings;
  saver.changed();
});
buttons.simulate.addEventListener("click", () => simulate());
buttons.publish.addEventListener("click", async () => {
  if (!(await validate({ quietWhenValid: true }))) return;
  openPublish({ api, data, graph, definition: definitionOf(graph, data.draft.definition.settings) });
});
if (!data.canPublish) buttons.publish.disabled = true;

// --------------------------------------------------------------------------- validate

async function validate({ quietWhenValid = false } = {}) {
  await saver.save();
  if (saver.stopped) return false;
  let result;
  try {
    result = await api.post(data.urls.check);
  } catch (error) {
    showProblemList([{ node: "", message: error.message }]);
    return false;
  }
  const byNode = new Map();
  for (const problem of result.errors) {
    if (!byNode.has(problem.node)) byNode.set(problem.node, []);
    byNode.get(problem.node).push(problem.message);
  }
  for (const cell of graph.getNodes()) showProblems(cell, byNode.get(cell.id) || []);
  if (result.valid && quietWhenValid) {
    document.getElementById("je-problems").hidden = true;
    return true;
  }
  showProblemList(result.errors);
  return result.valid;
}

function showProblemList(problems) {
  const panel = document.getElementById("je-problems");
  panel.hidden = false;
  panel.dataset.valid = problems.length ? "false" : "true";
  panel.innerHTML = "";
  const header = document.createElement("header");
  const title = document.createElement("span");
  title.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? "" : "s"} to fix before publishing` : "Ready to publish: no problems";
  const close = document.createElement("button");
  close.className = "icon-button";
  close.setAttribute("aria-label", "Close");
  close.textContent = "×";
  close.addEventListener("click", () => { panel.hidden = true; });
  header.append(title, close);
  panel.append(header);
  if (!problems.length) return;
  const list = document.createElement("ul");
  for (const problem of problems) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    if (problem.node) {
      const code = document.createElement("code");
      code.textContent = problem.node;
      button.append(code, ": ");
    }
    button.append(problem.message);
    button.addEventListener("click", () => {
      const cell = problem.node && graph.getCellById(problem.node);
      if (cell) {
        select(cell);
        graph.centerCell(cell);
      }
    });
    item.append(button);
    list.append(item);
  }
  panel.append(list);
}

// --------------------------------------------------------------------------- simulate

let simulated = false;

async function simulate() {
  if (simulated) {
    clearSimulation();
    return;
  }
  await saver.save();
  let result;
  try {
    result = await api.post(data.urls.simulate, { sample: 500 });
  } catch (error) {
    const problems = error.body?.definition || [{ node: "", message: error.message }];
    showProblemList(Array.isArray(problems) ? problems : [{ node: "", message: String(problems) }]);
    return;
  }
  simulated = true;
  buttons.simulate.classList.add("btn--primary");
  buttons.simulate.textContent = "Hide simulation";
  for (const cell of graph.getNodes()) {
    const reached = result.nodes[cell.id]?.reached ?? 0;
    const share = result.profiles ? Math.round((reached / result.profiles) * 100) : 0;
    cell.attr("metrics/text", `${reached.toLocaleString()} of ${result.profiles.toLocaleString()} reach this (${share}%)`, { ignoreHistory: true });
  }
  for (const edge of graph.getEdges()) {
    const port = edge.getSourcePortId()?.slice(4);
    const found = result.edges.find((e) => e.source === edge.getSourceCellId() && e.port === port && e.target === edge.getTargetCellId());
    if (found) {
      edge.setLabels([{ attrs: { label: { text: `${Math.round(found.share * 100)}% · ${found.count}` }, body: { fill: "#efeefd", stroke: "#d6d3fa", rx: 4, ry: 4 } } }], { ignoreHistory: true });
    }
  }
}

function clearSimulation() {
  simulated = false;
  buttons.simulate.classList.remove("btn--primary");
  buttons.simulate.textContent = "Simulate";
  for (const cell of graph.getNodes()) cell.attr("metrics/text", "", { ignoreHistory: true });
  for (const edge of graph.getEdges()) edge.setLabels([], { ignoreHistory: true });
}

// --------------------------------------------------------------------------- live numbers

const LIVE_PARTS = [
  ["entered", "entered"],
  ["waiting", "waiting"],
  ["sent", "sent"],
  ["delivered", "delivered"],
  ["opened", "opened"],
  ["clicked", "clicked"],
  ["converted", "converted"],
  ["failed", "failed"],
];

function liveText(counts) {
  const parts = LIVE_PARTS.filter(([key]) => counts[key]).map(([key, label]) => `${counts[key].toLocaleString()} ${label}`);
  return parts.join(" · ");
}

function showLive(frame) {
  if (simulated) return;
  for (const cell of graph.getNodes()) {
    const counts = frame.nodes[cell.id];
    cell.attr("metrics/text", counts ? liveText(counts) : "", { ignoreHistory: true });
  }
  showPanel(frame);
  const totals = frame.totals;
  const badge = root.querySelector("[data-testid=live-totals]");
  badge.hidden = false;
  badge.dataset.state = "live";
  badge.textContent = `Live: ${totals.active.toLocaleString()} in the journey · ${totals.entered.toLocaleString()} entered · ${totals.sent.toLocaleString()} sent · ${totals.converted.toLocaleString()} converted`;
}

let chart = null;
let panelClosed = false;

function showPanel(frame) {
  const panel = document.getElementById("je-livepanel");
  if (panelClosed) return;
  panel.hidden = false;
  const list = panel.querySelector(".je-livetotals");
  list.innerHTML = "";
  for (const [key, label] of [["active", "In it now"], ["entered", "Entered"], ["sent", "Sent"], ["converted", "Converted"]]) {
    const item = document.createElement("div");
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.dataset.total = key;
    value.textContent = (frame.totals[key] || 0).toLocaleString();
    item.append(term, value);
    list.append(item);
  }
  const labels = frame.series.map((point) => new Date(point.hour).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  const sent = frame.series.map((point) => point.sent);
  const converted = frame.series.map((point) => point.converted);
  if (!window.Chart) return;
  if (!chart) {
    chart = new window.Chart(document.getElementById("je-livechart"), {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "Sent", data: sent, borderColor: "#5a52e0", backgroundColor: "rgba(90,82,224,0.12)", fill: true, tension: 0.3, pointRadius: 0 },
          { label: "Converted", data: converted, borderColor: "#1e8a4f", backgroundColor: "rgba(30,138,79,0.10)", fill: true, tension: 0.3, pointRadius: 0 },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: { legend: { position: "bottom", labels: { boxWidth: 10, font: { size: 11 } } } },
        scales: { x: { ticks: { maxTicksLimit: 6, font: { size: 10 } } }, y: { beginAtZero: true, ticks: { precision: 0, font: { size: 10 } } } },
      },
    });
  } else {
    chart.data.labels = labels;
    chart.data.datasets[0].data = sent;
    chart.data.datasets[1].data = converted;
    chart.update("none");
  }
}

document.querySelector("[data-action=live-panel-close]").addEventListener("click", () => {
  panelClosed = true;
  document.getElementById("je-livepanel").hidden = true;
});

function startLiveSocket() {
  connectLive(`/ws/journeys/${data.journey.id}/`, {
    onFrame: (frame) => {
      if (frame.type === "metrics") showLive(frame);
    },
    onState: (state) => {
      if (state === "reconnecting") root.querySelector("[data-testid=live-totals]").dataset.state = "reconnecting";
    },
  });
}

// --------------------------------------------------------------------------- start

buildPalette();
load();
refreshHistoryButtons();
const CHANGES = ["node:added", "node:removed", "edge:removed", "edge:connected", "node:moved", "node:change:data"];
for (const name of CHANGES) {
  graph.on(name, (args) => {
    if (args?.options?.silentSave) return;
    if (name === "edge:removed" && !args.edge?.getTargetCellId()) return; // a drag that went nowhere
    if (simulated && name !== "node:moved") clearSimulation();
    saver.changed();
  });
}
window.addEventListener("beforeunload", (event) => {
  if (saveState.dataset.state === "dirty" || saveState.dataset.state === "saving") {
    saver.save();
    event.preventDefault();
  }
});
let liveStarted = false;
function startLive() {
  if (liveStarted) return;
  liveStarted = true;
  startLiveSocket();
}
if (data.journey.liveVersion) startLive();
document.addEventListener("journey:published", startLive);
root.dataset.ready = "true";
