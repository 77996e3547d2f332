// The replication throughput chart: one bar per execution (MiB/s), coloured by its outcome; a click opens the
// execution. The data comes from the page's json_script element (no inline script: the Content-Security-Policy).
(function () {
  "use strict";

  const COLOURS = { succeeded: "#2f8400", failed: "#c21d00", stopped: "#8c8c8c", running: "#0072a3" };

  function draw() {
    const canvas = document.getElementById("replication-chart");
    const source = document.getElementById("replication-chart-data");
    if (!canvas || !source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: "MiB/s",
          data: data.throughput,
          backgroundColor: data.states.map(function (state) { return COLOURS[state] || "#c25400"; }),
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { afterLabel: function (item) { return data.states[item.dataIndex]; } } },
        },
        scales: { y: { beginAtZero: true, title: { display: true, text: "MiB/s" } } },
        onClick: function (event, elements) {
          if (elements.length) window.location.assign(data.urls[elements[0].index]);
        },
      },
    });
    canvas.dataset.drawn = String(chart.data.labels.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
