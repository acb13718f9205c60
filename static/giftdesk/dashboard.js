// The spending dashboard's charts (templates/admin/orders/order/dashboard.html): one stacked bar
// chart per currency, a bar per month, one dataset per provider, drawn with Chart.js
// (static/giftdesk/vendor/chart.js/). The numbers come from the page's JSON (json_script), the
// same the table under each chart shows; a bar leads to the orders it counts. When a chart is
// drawn its canvas gets data-drawn="true" (the browser test waits for it).
"use strict";
(function () {
  if (typeof window.Chart !== "function") { return; }  // the tables still hold every number

  // One colour per provider, the same on every chart; others take the rest in turn.
  var COLOURS = {gogift: "#205067", giftronaut: "#e0a800", gifty: "#3f9a58", ugiftme: "#9c4dcc"};
  var SPARE = ["#c4302b", "#6b7f99", "#d97706", "#0f766e"];
  var grouped = new Intl.NumberFormat(undefined, {maximumFractionDigits: 2});

  function colour(kind, index) {
    return COLOURS[kind] || SPARE[index % SPARE.length];
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart-data"));
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var datasets = data.datasets.map(function (set, index) {
      return {
        label: set.label,
        // Exact amounts arrive as strings; a number is only needed to draw the bar's height.
        data: set.values.map(Number),
        backgroundColor: colour(set.kind, index),
        texts: set.texts,
        urls: set.urls
      };
    });
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: {labels: data.labels, datasets: datasets},
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: {mode: "nearest", intersect: true},
        scales: {
          x: {stacked: true, title: {display: true, text: "Month created"}},
          y: {
            stacked: true, beginAtZero: true,
            title: {display: true, text: data.axis},
            ticks: {callback: function (value) { return grouped.format(value); }}
          }
        },
        plugins: {
          legend: {position: "bottom"},
          tooltip: {
            callbacks: {
              label: function (item) { return item.dataset.label + ": " + item.dataset.texts[item.dataIndex]; }
            }
          }
        },
        onHover: function (event, elements) {
          canvas.style.cursor = elements.length ? "pointer" : "default";
        },
        onClick: function (event, elements) {
          if (!elements.length) { return; }
          var url = datasets[elements[0].datasetIndex].urls[elements[0].index];
          if (url) { window.location.assign(url); }
        }
      }
    });
    canvas.setAttribute("data-drawn", chart.width > 0 && chart.height > 0 ? "true" : "empty");
  }

  document.querySelectorAll("canvas[data-chart-data]").forEach(function (canvas) {
    try {
      draw(canvas);
    } catch (error) {
      canvas.setAttribute("data-drawn", "failed");
      throw error;
    }
  });
}());
