// The canvas: an @antv/x6 graph whose nodes carry journey nodes (the JSON of
// journeys/nodes.py) and whose edges leave a node by a named output port.
//
// A node's cell id is its journey node id. Output ports are `out:<name>` on the
// right (next, yes / no, a split's variants, on_event / on_timeout); every node but a
// trigger has one input port `in` on the left.

const { Graph, Shape, History, Snapline, Selection, MiniMap, Dnd } = window.X6;

export const NODE_WIDTH = 248;
const BASE_HEIGHT = 64;
const PORT_GAP = 22;

// The look of each palette item: colour and a 16x16 stroke icon.
const ICONS = {
  bolt: "M9 1.75 3.75 9h4l-1 5.25L12.25 7h-4z",
  segments: "M6 3.75a4.25 4.25 0 1 0 0 8.5 4.25 4.25 0 0 0 0-8.5zM10 3.75a4.25 4.25 0 1 0 0 8.5 4.25 4.25 0 0 0 0-8.5z",
  calendar: "M2.75 3.75h10.5v9.5H2.75zM2.75 6.75h10.5M5.5 2v3M10.5 2v3",
  code: "M5.5 4.5 2 8l3.5 3.5M10.5 4.5 14 8l-3.5 3.5",
  clock: "M8 2.25a5.75 5.75 0 1 0 0 11.5A5.75 5.75 0 0 0 8 2.25zM8 4.75V8l2.25 1.5",
  hourglass: "M4 2h8M4 14h8M4.75 2c0 3 6.5 3.5 6.5 6s-6.5 3-6.5 6M11.25 2c0 3-6.5 3.5-6.5 6s6.5 3 6.5 6",
  branch: "M4 2.5v11M4 8c0-3 8-2 8-5.5M12 2.5v0M4 8c0 3 8 2 8 5.5",
  split: "M2 8h4l4-4.5h4M6 8l4 4.5h4",
  mail: "M2.25 3.75h11.5v8.5H2.25zM2.5 4.25 8 8.5l5.5-4.25",
  message: "M2.5 3.25h11v7.5H7l-3 2.5v-2.5H2.5z",
  bell: "M4 11V7a4 4 0 0 1 8 0v4l1.25 1.5H2.75zM6.5 13.75a1.5 1.5 0 0 0 3 0",
  layout: "M2.25 2.75h11.5v10.5H2.25zM2.25 6.25h11.5M6.25 6.25v7",
  fallback: "M3 3.5h6.5a3 3 0 0 1 0 6H4M6 7l-2.5 2.5L6 12",
  edit: "M10.5 2.5l3 3-8 8H2.5v-3z",
  flag: "M3.5 14V2.5M3.5 3h8.5l-2 3 2 3H3.5",
  exit: "M6.5 2.75h-3.75v10.5h3.75M10 5l3 3-3 3M13 8H6.5",
};

const GROUP_COLORS = {
  triggers: "#1e8a4f",
  flow: "#b76e00",
  actions: "#5a52e0",
  goals: "#0b7a99",
};

let looks = {};

export function setPalette(palette) {
  looks = {};
  for (const group of palette) {
    for (const item of group.items) {
      looks[item.key] = { title: item.title, icon: item.icon, color: GROUP_COLORS[group.key], group: group.key };
    }
  }
  return looks;
}

export function look(key) {
  return looks[key] || { title: "Node", icon: "flag", color: "#5d5d66", group: "flow" };
}

export function iconSvg(name, size = 16) {
  const path = ICONS[name] || ICONS.flag;
  return `<svg viewBox="0 0 16 16" width="${size}" height="${size}" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d="${path}"/></svg>`;
}

Graph.registerNode(
  "journey-node",
  {
    width: NODE_WIDTH,
    height: BASE_HEIGHT,
    markup: [
      { tagName: "rect", selector: "body" },
      { tagName: "rect", selector: "swatch" },
      { tagName: "path", selector: "icon" },
      { tagName: "text", selector: "title" },
      { tagName: "text", selector: "summary" },
      { tagName: "g", selector: "badge", children: [
        { tagName: "circle", selector: "badgeDot" },
        { tagName: "text", selector: "badgeText" },
      ] },
      { tagName: "text", selector: "metrics" },
    ],
    attrs: {
      body: {
        refWidth: "100%", refHeight: "100%", rx: 10, ry: 10,
        fill: "#ffffff", stroke: "#d8d8dd", strokeWidth: 1,
        filter: { name: "dropShadow", args: { dx: 0, dy: 1, blur: 3, color: "rgba(0,0,0,0.08)" } },
      },
      swatch: { x: 12, y: 16, width: 32, height: 32, rx: 8, ry: 8, fill: "#5a52e0", stroke: "none" },
      icon: {
        transform: "translate(20 24)", fill: "none", stroke: "#ffffff", strokeWidth: 1.5,
        strokeLinecap: "round", strokeLinejoin: "round",
      },
      title: {
        x: 56, y: 26, fontSize: 13, fontWeight: 600, fill: "#1b1b1f",
        fontFamily: "var(--font-sans)", textAnchor: "start", textVerticalAnchor: "middle",
      },
      summary: {
        x: 56, y: 45, fontSize: 12, fill: "#5d5d66", fontFamily: "var(--font-sans)",
        textAnchor: "start", textVerticalAnchor: "middle",
        textWrap: { width: NODE_WIDTH - 72, height: 20, ellipsis: true, breakWord: true },
      },
      badge: { display: "none" },
      badgeDot: { cx: NODE_WIDTH - 14, cy: 14, r: 8, fill: "#d2343b" },
      badgeText: {
        x: NODE_WIDTH - 14, y: 14, fontSize: 11, fontWeight: 700, fill: "#ffffff",
        textAnchor: "middle", textVerticalAnchor: "middle", text: "!",
      },
      metrics: {
        x: 12, y: BASE_HEIGHT + 16, fontSize: 11, fill: "#5a52e0", fontWeight: 600,
        fontFamily: "var(--font-sans)", textAnchor: "start", textVerticalAnchor: "middle", text: "",
      },
    },
    ports: {
      groups: {
        in: {
          position: "left",
          attrs: { circle: { r: 5, magnet: "passive", stroke: "#8a8a93", strokeWidth: 1.5, fill: "#ffffff" } },
        },
        out: {
          position: "right",
          label: { position: { name: "left", args: { x: -10 } } },
          attrs: {
            circle: { r: 5, magnet: true, stroke: "#5a52e0", strokeWidth: 1.5, fill: "#ffffff" },
            text: { fontSize: 11, fill: "#5d5d66", fontFamily: "var(--font-sans)" },
          },
        },
      },
    },
  },
  true,
);

const PORT_LABELS = { next: "", yes: "Yes", no: "No", on_event: "Event", on_timeout: "Timeout", holdout: "Holdout" };

export function portItems(node, ports) {
  const items = [];
  if (node.type !== "trigger") items.push({ id: "in", group: "in" });
  for (const name of ports) {
    const label = name in PORT_LABELS ? PORT_LABELS[name] : variantLabel(node, name);
    items.push({ id: `out:${name}`, group: "out", attrs: { text: { text: label } } });
  }
  return items;
}

function variantLabel(node, key) {
  const variant = (node.variants || []).find((v) => v.key === key);
  return variant ? variant.name || key.toUpperCase() : key;
}

export function heightFor(ports) {
  return Math.max(BASE_HEIGHT, 20 + PORT_GAP * ports.length);
}

// How every edge looks, drawn by hand or added by the builder.
export const EDGE_LOOK = {
  attrs: { line: { stroke: "#8a8a93", strokeWidth: 1.5, targetMarker: { name: "classic", size: 7 } } },
  zIndex: 0,
};

export function portName(portId) {
  return portId && portId.startsWith("out:") ? portId.slice(4) : null;
}

export function createGraph({ container, minimap, readOnly }) {
  const graph = new Graph({
    container,
    autoResize: true,
    background: { color: "#f6f6f7" },
    grid: { visible: true, size: 16, type: "dot", args: { color: "#d4d4d8", thickness: 1 } },
    panning: { enabled: true, eventTypes: ["leftMouseDown", "mouseWheel"], modifiers: "space" },
    mousewheel: { enabled: true, modifiers: ["ctrl", "meta"], minScale: 0.25, maxScale: 2, factor: 1.1 },
    interacting: readOnly ? { nodeMovable: false, edgeMovable: false, magnetConnectable: false } : true,
    connecting: {
      router: { name: "normal" },
      connector: { name: "smooth", args: { direction: "H" } },
      connectionPoint: "boundary",
      allowBlank: false,
      allowLoop: false,
      allowNode: false,
      allowEdge: false,
      allowMulti: "withPort",
      highlight: true,
      snap: { radius: 24 },
      createEdge() {
        return new Shape.Edge(structuredClone(EDGE_LOOK));
      },
      validateMagnet({ magnet }) {
        return !readOnly && magnet.getAttribute("port-group") === "out";
      },
      validateConnection({ sourceCell, targetCell, sourcePort, targetPort, edge }) {
        if (!sourceCell || !targetCell || sourceCell === targetCell) return false; // no self loops
        if (!sourcePort || !sourcePort.startsWith("out:") || targetPort !== "in") return false;
        if (targetCell.getData()?.node?.type === "trigger") return false; // nothing enters a trigger
        // One edge per output port.
        return !graph.getOutgoingEdges(sourceCell)?.some(
          (other) => other !== edge && other.getSourcePortId() === sourcePort && other.getTargetCellId(),
        );
      },
    },
    highlighting: {
      magnetAvailable: { name: "stroke", args: { padding: 3, attrs: { stroke: "#1e8a4f", strokeWidth: 2 } } },
      magnetAdsorbed: { name: "stroke", args: { padding: 3, attrs: { stroke: "#5a52e0", strokeWidth: 3 } } },
    },
  });
  const history = new History({ enabled: true, beforeAddCommand: (event, args) => !args?.options?.ignoreHistory });
  const selection = new Selection({
    enabled: true, multiple: true, rubberband: true, movable: !readOnly, showNodeSelectionBox: true,
    pointerEvents: "none", modifiers: null, filter: (cell) => cell.isNode() || cell.isEdge(),
  });
  graph.use(history);
  graph.use(new Snapline({ enabled: true, sharp: true }));
  graph.use(selection);
  graph.use(new MiniMap({ container: minimap, width: 200, height: 130, padding: 10 }));
  const dnd = new Dnd({ target: graph, scaled: false, validateNode: () => !readOnly });
  return { graph, dnd, history, selection };
}

export function nodeMetadata(node, meta) {
  const key = meta.look;
  const style = look(key);
  return {
    shape: "journey-node",
    id: node.id,
    width: NODE_WIDTH,
    height: heightFor(meta.ports),
    data: { node, summary: meta.summary, look: key, problems: [] },
    ports: { items: portItems(node, meta.ports) },
    attrs: {
      swatch: { fill: style.color },
      icon: { d: ICONS[style.icon] || ICONS.flag },
      title: { text: style.title },
      summary: { text: meta.summary },
    },
  };
}

export function showProblems(cell, problems) {
  cell.setData({ problems }, { ignoreHistory: true, silentSave: true });
  const bad = problems.length > 0;
  cell.attr("badge/display", bad ? "block" : "none", { ignoreHistory: true });
  cell.attr("badgeText/text", bad ? String(problems.length) : "!", { ignoreHistory: true });
  cell.attr("body/stroke", bad ? "#d2343b" : "#d8d8dd", { ignoreHistory: true });
  cell.attr("body/strokeWidth", bad ? 1.5 : 1, { ignoreHistory: true });
}

// Change a node's settings (one undo step): data, summary, and its ports, dropping
// edges that left a port it no longer has.
export function applyNode(graph, cell, node, summary, ports, lookKey) {
  graph.startBatch("inspector");
  const current = new Set(cell.getPorts().filter((p) => p.group === "out").map((p) => p.id));
  const wanted = portItems(node, ports).filter((p) => p.group === "out");
  const wantedIds = new Set(wanted.map((p) => p.id));
  for (const edge of graph.getOutgoingEdges(cell) || []) {
    if (!wantedIds.has(edge.getSourcePortId())) graph.removeEdge(edge);
  }
  for (const id of current) if (!wantedIds.has(id)) cell.removePort(id);
  for (const item of wanted) {
    if (current.has(item.id)) cell.portProp(item.id, "attrs/text/text", item.attrs.text.text);
    else cell.addPort(item);
  }
  cell.resize(NODE_WIDTH, heightFor(ports));
  const style = look(lookKey);
  // Replaced, not merged: a field the node no longer has must go.
  cell.setData({ ...cell.getData(), node, summary, look: lookKey }, { overwrite: true });
  cell.attr({
    summary: { text: summary },
    title: { text: style.title },
    swatch: { fill: style.color },
    icon: { d: ICONS[style.icon] || ICONS.flag },
  });
  graph.stopBatch("inspector");
}

export function definitionOf(graph, settings) {
  const nodes = graph.getNodes().map((cell) => ({ ...cell.getData().node, id: cell.id }));
  const edges = graph
    .getEdges()
    .filter((edge) => edge.getSourceCellId() && edge.getTargetCellId())
    .map((edge) => ({
      source: edge.getSourceCellId(),
      port: portName(edge.getSourcePortId()) || "next",
      target: edge.getTargetCellId(),
    }));
  return { nodes, edges, settings: settings || {} };
}

export function layoutOf(graph) {
  const nodes = {};
  for (const cell of graph.getNodes()) {
    const { x, y } = cell.getPosition();
    nodes[cell.id] = { x: Math.round(x), y: Math.round(y) };
  }
  return { nodes };
}

// Left to right in layers: each node one column after the furthest node that leads
// to it; rows in the order the branches leave their node.
export function autoLayout(graph) {
  const nodes = graph.getNodes();
  const column = new Map();
  const incoming = new Map(nodes.map((n) => [n.id, 0]));
  for (const edge of graph.getEdges()) {
    const target = edge.getTargetCellId();
    if (incoming.has(target)) incoming.set(target, incoming.get(target) + 1);
  }
  const queue = nodes.filter((n) => incoming.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) column.set(id, 0);
  const remaining = new Map(incoming);
  while (queue.length) {
    const id = queue.shift();
    const cell = graph.getCellById(id);
    const outs = (graph.getOutgoingEdges(cell) || []).slice().sort((a, b) => portOrder(cell, a) - portOrder(cell, b));
    for (const edge of outs) {
      const target = edge.getTargetCellId();
      if (!target || !remaining.has(target)) continue;
      column.set(target, Math.max(column.get(target) || 0, column.get(id) + 1));
      remaining.set(target, remaining.get(target) - 1);
      if (remaining.get(target) === 0) queue.push(target);
    }
  }
  for (const n of nodes) if (!column.has(n.id)) column.set(n.id, 0); // cycles: left as they are
  const rows = new Map();
  graph.startBatch("layout");
  for (const n of nodes) {
    const c = column.get(n.id);
    const row = rows.get(c) || 0;
    n.position(80 + c * (NODE_WIDTH + 96), 80 + row * 150);
    rows.set(c, row + 1);
  }
  graph.stopBatch("layout");
}

function portOrder(cell, edge) {
  const ids = cell.getPorts().map((p) => p.id);
  return ids.indexOf(edge.getSourcePortId());
}
