// The project Summary's vulnerability chart: a doughnut of the findings per severity over the project's images.
// The data comes from the page's json_script element (no inline script: the Content-Security-Policy).
(function () {
  "use strict";

  const COLOURS = {
    Critical: "#9e0000", High: "#e02200", Medium: "#e57200", Low: "#d5a100", Negligible: "#5f8ba3", Unknown: "#8c8c8c",
  };

  function draw() {
    const canvas = document.getElementById("vulnerability-chart");
    const source = document.getElementById("vulnerability-chart-data");
    if (!canvas || !source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const chart = new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Vulnerabilities",
          data: data.counts,
          backgroundColor: data.labels.map(function (severity) { return COLOURS[severity] || "#8c8c8c"; }),
        }],
      },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
    });
    canvas.dataset.drawn = String(chart.data.labels.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
