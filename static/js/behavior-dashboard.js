/* Draws the behaviour dashboard's charts from the json_script blocks the page renders.
   Without Chart.js (or JavaScript) nothing happens and the tables stand alone. Labels are drawn
   on canvas and no data is ever inserted as HTML. */
(function () {
  "use strict";

  var PALETTE = ["#4338ca", "#e11d48", "#0891b2", "#f59e0b", "#15803d", "#7c3aed",
                 "#db2777", "#64748b", "#0d9488", "#ea580c", "#2563eb", "#a16207"];

  function readData(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function alpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }

  function fmt(n, digits) {
    return Number(n).toLocaleString(undefined, {maximumFractionDigits: digits || 0});
  }

  function draw(canvasId, config) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) return null;
    return new window.Chart(canvas, config);
  }

  // Writes "1,234 · 42.0%" above each bar of the funnel.
  var funnelLabels = {
    id: "bdFunnelLabels",
    afterDatasetsDraw: function (chart, args, options) {
      var ctx = chart.ctx;
      var meta = chart.getDatasetMeta(0);
      ctx.save();
      ctx.font = "600 12px " + Chart.defaults.font.family;
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      meta.data.forEach(function (bar, i) {
        var pct = options.fromPrevious[i];
        var text = fmt(options.shoppers[i]) + (pct === null || pct === undefined ? "" : " \u00b7 " + fmt(pct, 1) + "%");
        ctx.fillStyle = options.color;
        ctx.fillText(text, bar.x, bar.y - 4);
      });
      ctx.restore();
    }
  };

  function funnel(data) {
    draw("bd-funnel-chart", {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Shoppers",
          data: data.shoppers,
          backgroundColor: data.labels.map(function (_l, i) { return alpha(PALETTE[0], 1 - i * 0.18); }),
          borderRadius: 6,
          maxBarThickness: 90
        }]
      },
      plugins: [funnelLabels],
      options: {
        maintainAspectRatio: false,
        layout: {padding: {top: 22}},
        plugins: {
          legend: {display: false},
          bdFunnelLabels: {shoppers: data.shoppers, fromPrevious: data.fromPrevious, color: cssVar("--body-fg", "#333")},
          tooltip: {
            callbacks: {
              afterLabel: function (item) {
                var lines = [];
                var prev = data.fromPrevious[item.dataIndex];
                var start = data.fromStart[item.dataIndex];
                if (prev !== null) lines.push(fmt(prev, 1) + "% of the previous step");
                if (start !== null) lines.push(fmt(start, 1) + "% of the first step");
                return lines;
              }
            }
          }
        },
        scales: {y: {beginAtZero: true, title: {display: true, text: "Shoppers"}}}
      }
    });
  }

  function lines(canvasId, data, options) {
    options = options || {};
    draw(canvasId, {
      type: options.stacked ? "bar" : "line",
      data: {
        labels: data.labels,
        datasets: data.series.map(function (s, i) {
          var color = PALETTE[i % PALETTE.length];
          return {
            label: s.label,
            data: s.values,
            borderColor: color,
            backgroundColor: options.stacked ? alpha(color, 0.85) : alpha(color, 0.15),
            borderWidth: options.stacked ? 0 : 2,
            pointRadius: 0,
            pointHitRadius: 6,
            tension: 0.25
          };
        })
      },
      options: {
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        plugins: {legend: {position: "bottom", labels: {boxWidth: 12, usePointStyle: true}}},
        scales: {
          x: {stacked: !!options.stacked, ticks: {maxRotation: 0, autoSkipPadding: 12}, grid: {display: false}},
          y: {stacked: !!options.stacked, beginAtZero: true}
        }
      }
    });
  }

  function trending(data) {
    draw("bd-trending-chart", {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{label: "Score", data: data.score, backgroundColor: alpha(PALETTE[0], 0.85), borderRadius: 4}]
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {afterLabel: function (item) { return "Lift \u00d7" + fmt(data.lift[item.dataIndex], 2); }}}
        },
        scales: {
          x: {beginAtZero: true, title: {display: true, text: "Score"}},
          y: {ticks: {callback: function (value) {
            var label = this.getLabelForValue(value);
            return label.length > 24 ? label.slice(0, 23) + "\u2026" : label;
          }}}
        }
      }
    });
  }

  function rfm(data) {
    draw("bd-rfm-chart", {
      type: "doughnut",
      data: {
        labels: data.labels,
        datasets: [{
          data: data.customers,
          backgroundColor: data.labels.map(function (_l, i) { return PALETTE[i % PALETTE.length]; }),
          borderColor: cssVar("--body-bg", "#fff"),
          borderWidth: 2
        }]
      },
      options: {
        maintainAspectRatio: false,
        cutout: "58%",
        plugins: {legend: {position: "right", labels: {boxWidth: 12, usePointStyle: true}}}
      }
    });
  }

  function forecast(data) {
    var accent = PALETTE[0];
    var future = PALETTE[3];
    draw("bd-forecast-chart", {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          {label: "Orders", data: data.history, borderColor: accent, backgroundColor: accent, borderWidth: 2,
           pointRadius: 0, pointHitRadius: 6, tension: 0.2},
          {label: "Lower", data: data.lower, borderColor: "transparent", pointRadius: 0, fill: false},
          {label: "Interval", data: data.upper, borderColor: "transparent", backgroundColor: alpha(future, 0.22),
           pointRadius: 0, fill: "-1"},
          {label: "Forecast", data: data.mean, borderColor: future, backgroundColor: future, borderWidth: 2,
           borderDash: [6, 4], pointRadius: 0, pointHitRadius: 6, tension: 0.2}
        ]
      },
      options: {
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        spanGaps: false,
        plugins: {
          legend: {position: "bottom", labels: {boxWidth: 12, filter: function (item) { return item.text !== "Lower"; }}},
          tooltip: {filter: function (item) { return item.raw !== null && item.dataset.label !== "Lower" && item.dataset.label !== "Interval"; }}
        },
        scales: {
          x: {ticks: {maxRotation: 0, autoSkipPadding: 16}, grid: {display: false}},
          y: {beginAtZero: true, title: {display: true, text: "Orders per day"}}
        }
      }
    });
  }

  function init() {
    var root = document.querySelector("[data-bd-root]");
    if (!root || typeof window.Chart === "undefined") return;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = cssVar("--body-quiet-color", "#666");
    Chart.defaults.borderColor = cssVar("--hairline-color", "#e8e8e8");
    root.classList.add("bd-js");

    var renderers = {
      "behavior-funnel-data": funnel,
      "behavior-trends-data": function (d) { lines("bd-trends-chart", d); },
      "behavior-category-trends-data": function (d) { lines("bd-category-trends-chart", d, {stacked: true}); },
      "behavior-trending-data": trending,
      "behavior-rfm-data": rfm,
      "behavior-forecast-data": forecast
    };
    Object.keys(renderers).forEach(function (id) {
      var data = readData(id);
      if (!data) return;
      try {
        renderers[id](data);
        // The chart tells the story now: fold its raw table away (still one click off).
        var section = document.getElementById(id).closest(".bd-card");
        var details = section && section.querySelector("details[data-bd-collapse]");
        if (details) details.open = false;
      } catch (e) {
        var failed = document.getElementById(id).closest(".bd-card");
        var box = failed && failed.querySelector(".bd-chart");
        if (box) box.style.display = "none";
        if (window.console) console.error("Behaviour dashboard: chart " + id + " failed", e);
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
