// The project Summary's vulnerability chart: a doughnut of the findings per severity over the project's images.
// The data comes from the page's json_script element (no inline script: the Content-Security-Policy). Each
// severity's colour is the one its badge has: the custom property --wharf-sev-<severity> of static/wharf/wharf.css,
// the single place the severity colours are defined.
(function () {
  "use strict";

  function colour(styles, severity) {
    return styles.getPropertyValue("--wharf-sev-" + severity.toLowerCase()).trim()
      || styles.getPropertyValue("--wharf-sev-unknown").trim();
  }

  function draw() {
    const canvas = document.getElementById("vulnerability-chart");
    const source = document.getElementById("vulnerability-chart-data");
    if (!canvas || !source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const styles = getComputedStyle(document.documentElement);
    const chart = new Chart(canvas, {
      type: "doughnut",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Vulnerabilities",
          data: data.counts,
          backgroundColor: data.labels.map(function (severity) { return colour(styles, severity); }),
        }],
      },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
    });
    canvas.dataset.drawn = String(chart.data.labels.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
