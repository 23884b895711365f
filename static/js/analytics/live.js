// Live numbers on the analytics pages. The journey report listens on the builder's
// socket (/ws/journeys/<id>/: per-node and total numbers); the overview on
// /ws/analytics/<workspace>/ (its totals, rates and charts for the page's filters).
import { connectLive } from "../live_socket.js";
import { updateChart } from "./charts.js";

const count = (value) => Number(value ?? 0).toLocaleString("en-US");
const percent = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`);
const money = (value) => Number(value ?? 0).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function setText(element, text) {
  if (element.textContent !== text) {
    element.textContent = text;
    element.dataset.changed = String(Date.now());
  }
}

function showJourney(root, frame) {
  for (const element of root.querySelectorAll("[data-live-total]")) {
    setText(element, count(frame.totals[element.dataset.liveTotal]));
  }
  for (const element of root.querySelectorAll("[data-live-node]")) {
    const numbers = frame.nodes[element.dataset.liveNode] || {};
    setText(element, count(numbers[element.dataset.key]));
  }
}

function showOverview(root, frame) {
  for (const element of root.querySelectorAll("[data-live-stat]")) {
    const value = frame.totals[element.dataset.liveStat] ?? frame[element.dataset.liveStat];
    setText(element, element.dataset.unit === "money" ? money(value) : count(value));
  }
  for (const element of root.querySelectorAll("[data-live-rate]")) {
    setText(element, percent(frame.rates[element.dataset.liveRate]));
  }
  for (const chart of frame.charts || []) updateChart(chart.key, chart);
}

for (const root of document.querySelectorAll("[data-live-socket]")) {
  const status = root.querySelector("[data-live-status]");
  const show = root.dataset.liveKind === "journey" ? showJourney : showOverview;
  connectLive(root.dataset.liveSocket, {
    onFrame: (frame) => {
      if (frame.type === "metrics" || frame.type === "overview") {
        show(root, frame);
        root.dataset.liveAt = frame.at || "";
      }
    },
    onState: (state) => {
      root.dataset.liveState = state;
      if (status) {
        status.hidden = state === "refused";
        status.textContent = state === "live" ? "live" : "reconnecting…";
      }
    },
  });
}
