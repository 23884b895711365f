// Draws the analytics pages' charts (analytics/charts.py describes each one in a JSON
// script element beside its canvas) and redraws them, with their tables, when live
// numbers arrive (static/js/analytics/live.js calls updateChart).

const PALETTE = ["#5a52e0", "#1e8a4f", "#d97706", "#d2343b", "#0e7490", "#9333ea", "#64748b", "#be185d"];
const charts = new Map();

function formatter(unit) {
  if (unit === "%") return (value) => `${(value * 100).toFixed(1)}%`;
  if (unit === "money") return (value) => Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return (value) => Number(value).toLocaleString();
}

function datasets(data) {
  return data.series.map((series, index) => {
    const color = PALETTE[index % PALETTE.length];
    if (data.kind === "doughnut") {
      return { label: series.name, data: series.values, backgroundColor: data.labels.map((_, i) => PALETTE[i % PALETTE.length]) };
    }
    return {
      label: series.name,
      data: series.values,
      borderColor: color,
      backgroundColor: data.kind === "line" ? `${color}1f` : color,
      fill: data.kind === "line" && data.series.length === 1,
      tension: 0.25,
      pointRadius: data.labels.length > 40 ? 0 : 2,
      borderWidth: data.kind === "line" ? 2 : 0,
      yAxisID: series.axis === "right" ? "y1" : "y",
    };
  });
}

function options(data) {
  const format = formatter(data.unit);
  const stacked = data.kind === "stacked";
  const base = {
    animation: false,
    maintainAspectRatio: false,
    plugins: {
      legend: { position: "bottom", labels: { boxWidth: 10, font: { size: 11 } } },
      tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${format(item.raw)}` } },
    },
  };
  if (data.kind === "doughnut") return base;
  if (data.kind === "hbar") {
    return {
      ...base,
      indexAxis: "y",
      scales: {
        x: { beginAtZero: true, ticks: { font: { size: 10 }, callback: (value) => format(value), precision: 0 } },
        y: { ticks: { font: { size: 11 } } },
      },
    };
  }
  const scales = {
    x: { stacked, ticks: { maxTicksLimit: 10, font: { size: 10 } } },
    y: { stacked, beginAtZero: true, ticks: { font: { size: 10 }, callback: (value) => format(value), precision: data.unit === "%" ? undefined : 0 } },
  };
  if (data.series.some((series) => series.axis === "right")) {
    scales.y1 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, ticks: { font: { size: 10 } } };
  }
  return { ...base, interaction: { mode: "index", intersect: false }, scales };
}

function draw(canvas, data) {
  const type = data.kind === "stacked" || data.kind === "hbar" ? "bar" : data.kind;
  const chart = new window.Chart(canvas, { type, data: { labels: data.labels, datasets: datasets(data) }, options: options(data) });
  charts.set(data.key, { chart, canvas });
}

function renderTable(key, data) {
  const table = document.querySelector(`[data-chart-table="${CSS.escape(key)}"]`);
  if (!table) return;
  const format = formatter(data.unit);
  const body = document.createElement("tbody");
  data.labels.forEach((label, index) => {
    const row = body.insertRow();
    row.insertCell().textContent = label;
    for (const series of data.series) {
      const cell = row.insertCell();
      cell.className = "num";
      const value = series.values[index];
      cell.textContent = value === null || value === undefined ? "—" : format(value);
    }
  });
  table.tBodies[0].replaceWith(body);
}

// Replaces a chart's numbers (same shape as the server's JSON) and its table.
export function updateChart(key, data) {
  const entry = charts.get(key);
  if (entry) {
    entry.chart.data.labels = data.labels;
    entry.chart.data.datasets = datasets(data);
    entry.chart.update("none");
    if (data.series.some((series) => series.values.some((value) => value))) {
      entry.canvas.parentElement.hidden = false;
      entry.canvas.closest(".card-body")?.querySelector(".chart-empty")?.remove();
    }
  }
  renderTable(key, data);
}

export function renderCharts(root = document) {
  if (!window.Chart) return;
  for (const canvas of root.querySelectorAll("canvas[data-chart]")) {
    const script = document.getElementById(canvas.dataset.chart);
    if (!script) continue;
    draw(canvas, JSON.parse(script.textContent));
  }
}

renderCharts();
