/* Sentiment dashboard charts. Data comes from the json_script element #sentiment-data; every label
   (product titles, aspect names) is drawn by Chart.js on a canvas, never inserted as HTML. */
(function () {
  "use strict";

  var COLORS = { positive: "#2e8b57", neutral: "#a0a0a0", negative: "#c0392b" };
  var LINE_COLORS = ["#417690", "#e67e22", "#8e44ad", "#16a085", "#c0392b"];

  function data() {
    var element = document.getElementById("sentiment-data");
    return element ? JSON.parse(element.textContent) : null;
  }

  function stacked(label, key, rows) {
    return { type: "bar", label: label, data: rows.map(function (r) { return r[key]; }),
             backgroundColor: COLORS[key], stack: "reviews", yAxisID: "y" };
  }

  function timeseries(canvas, rows) {
    new window.Chart(canvas, {
      data: {
        labels: rows.map(function (r) { return r.bucket; }),
        datasets: [
          stacked("Positive", "positive", rows), stacked("Neutral", "neutral", rows),
          stacked("Negative", "negative", rows),
          { type: "line", label: "Average score", data: rows.map(function (r) { return r.avg; }),
            borderColor: "#333", backgroundColor: "#333", yAxisID: "score", tension: 0.2 }
        ]
      },
      options: {
        maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: {
          y: { stacked: true, beginAtZero: true, title: { display: true, text: "reviews" } },
          score: { position: "right", min: -1, max: 1, grid: { drawOnChartArea: false },
                   title: { display: true, text: "average score" } }
        }
      }
    });
  }

  function groups(canvas, series) {
    var names = Object.keys(series);
    var buckets = [];
    names.forEach(function (name) {
      series[name].forEach(function (point) { if (buckets.indexOf(point.bucket) < 0) { buckets.push(point.bucket); } });
    });
    buckets.sort();
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: buckets,
        datasets: names.map(function (name, i) {
          var byBucket = {};
          series[name].forEach(function (point) { byBucket[point.bucket] = point.avg; });
          return { label: name.length > 40 ? name.slice(0, 39) + "…" : name, spanGaps: true, tension: 0.2,
                   borderColor: LINE_COLORS[i % LINE_COLORS.length], backgroundColor: LINE_COLORS[i % LINE_COLORS.length],
                   data: buckets.map(function (b) { return b in byBucket ? byBucket[b] : null; }) };
        })
      },
      options: { maintainAspectRatio: false, scales: { y: { min: -1, max: 1 } } }
    });
  }

  function aspects(canvas, rows) {
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(function (r) { return r.aspect; }),
        datasets: ["positive", "neutral", "negative"].map(function (key) {
          return { label: key.charAt(0).toUpperCase() + key.slice(1), backgroundColor: COLORS[key],
                   data: rows.map(function (r) { return r[key]; }) };
        })
      },
      options: { indexAxis: "y", maintainAspectRatio: false,
                 scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } } }
    });
  }

  function draw() {
    var payload = data();
    if (!payload || !window.Chart) { return; }
    var canvas = document.getElementById("sentiment-timeseries");
    if (canvas) { timeseries(canvas, payload.timeseries); }
    canvas = document.getElementById("sentiment-groups");
    if (canvas) { groups(canvas, payload.groups); }
    canvas = document.getElementById("sentiment-aspects");
    if (canvas) { aspects(canvas, payload.aspects); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
