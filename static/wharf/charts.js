// The one chart helper: draws every <canvas data-chart-source="ID"> from the json_script element ID
// (portal.core.charts.Chart.data()), then hides the table of the same numbers visually; without JavaScript, or
// without Chart.js, the table stays as it is. Runs on load and after htmx swaps a region in.
(function () {
  "use strict";

  const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

  function bytes(value) {
    let unit = 0;
    while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + UNITS[unit];
  }

  function tick(unit) {
    if (unit === "bytes") return bytes;
    if (unit === "percent") return function (value) { return value + " %"; };
    return undefined;
  }

  function datasets(data) {
    return data.series.map(function (series) {
      const colour = series.colours.length ? series.colours : series.colour;
      return {
        label: series.label,
        data: series.values,
        backgroundColor: colour,
        borderColor: data.kind === "line" ? colour : undefined,
        spanGaps: true,
        pointRadius: data.kind === "line" ? 2 : undefined,
      };
    });
  }

  function options(data) {
    const base = { animation: false, maintainAspectRatio: false, plugins: { legend: { display: data.series.length > 1 || data.kind === "doughnut" } } };
    if (data.kind === "doughnut") {
      base.plugins.legend.position = "right";
      return base;
    }
    const format = tick(data.unit);
    base.scales = {
      x: { stacked: data.stacked, title: { display: !!data.axis, text: data.axis } },
      y: { stacked: data.stacked, beginAtZero: true, ticks: format ? { callback: format } : {} },
    };
    if (data.unit === "percent") base.scales.y.suggestedMax = 100;
    return base;
  }

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chartSource);
    if (!source || canvas.dataset.drawn || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const figure = canvas.closest("[data-chart-figure]");
    canvas.closest("[data-chart-frame]").hidden = false;
    const chart = new Chart(canvas, { type: data.kind, data: { labels: data.labels, datasets: datasets(data) }, options: options(data) });
    canvas.dataset.drawn = String(chart.data.labels.length);
    const table = figure && figure.querySelector("[data-chart-table]");
    if (table) table.classList.add("clr-sr-only");
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart-source]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
