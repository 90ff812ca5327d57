/* Aisle behaviour beacon: browser-only events (recommendations shown/clicked, time on page).
 *
 * Events queue in localStorage with a client id each and are sent in batches to
 * /api/events/batch; a batch that failed on the network is sent again with the same ids,
 * and the server stores each id once. Markup contract:
 *   <a data-rec-product="42" data-rec-rail="related" data-rec-position="3" data-rec-reason="...">
 *   <body data-dwell-product="42">   (product pages: time on page is reported on leave)
 */
(function () {
  "use strict";
  var ENDPOINT = "/api/events/batch";
  var STORE = "aisle.events.pending";
  var MAX_BATCH = 100;
  var MAX_QUEUE = 500;
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var token = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var queue = load();
  var sending = false;

  function load() {
    try { return JSON.parse(window.localStorage.getItem(STORE) || "[]"); } catch (e) { return []; }
  }
  function save() {
    try { window.localStorage.setItem(STORE, JSON.stringify(queue.slice(-MAX_QUEUE))); } catch (e) { /* private mode */ }
  }
  function newId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(16) + "-" + Math.random().toString(16).slice(2, 14);
  }
  function track(type, product, properties) {
    queue.push({ id: newId(), type: type, product: product, occurred_at: new Date().toISOString(),
                 properties: properties || {} });
    save();
  }
  function flush(leaving) {
    if (sending || !queue.length) { return; }
    var batch = queue.slice(0, MAX_BATCH);
    sending = true;
    fetch(ENDPOINT, {
      method: "POST", credentials: "same-origin", keepalive: !!leaving,
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: JSON.stringify({ events: batch })
    }).then(function (response) {
      // 200: stored; 400: the server rejected what it could not store and kept the rest.
      // Either way these ids are settled. 429/5xx: keep them and retry later.
      if (response.status === 200 || response.status === 400) {
        var sent = {};
        batch.forEach(function (e) { sent[e.id] = true; });
        queue = queue.filter(function (e) { return !sent[e.id]; });
        save();
      }
    }).catch(function () { /* offline: retry on the next flush */ })
      .then(function () { sending = false; });
  }

  function recData(el) {
    var product = parseInt(el.getAttribute("data-rec-product"), 10);
    return { product: isNaN(product) ? null : product, properties: {
      rail: el.getAttribute("data-rec-rail") || "",
      position: parseInt(el.getAttribute("data-rec-position") || "0", 10),
      reason: el.getAttribute("data-rec-reason") || "",
      page: window.location.pathname
    } };
  }

  function watchRecommendations() {
    var items = document.querySelectorAll("[data-rec-product]");
    if (!items.length) { return; }
    var shown = new WeakSet();
    var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting && !shown.has(entry.target)) {
          shown.add(entry.target);
          var data = recData(entry.target);
          track("rec_shown", data.product, data.properties);
        }
      });
    }, { threshold: 0.5 }) : null;
    items.forEach(function (el) {
      if (observer) { observer.observe(el); }
      el.addEventListener("click", function () {
        var data = recData(el);
        track("rec_clicked", data.product, data.properties);
        flush(true);
      });
    });
  }

  function watchDwell() {
    var product = parseInt(document.body.getAttribute("data-dwell-product") || "", 10);
    if (isNaN(product)) { return; }
    var visibleSince = document.visibilityState === "visible" ? Date.now() : null;
    var total = 0;
    var reported = false;
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        if (visibleSince !== null) { total += Date.now() - visibleSince; visibleSince = null; }
        if (!reported && total > 0) {
          reported = true;
          track("dwell", product, { ms: Math.min(Math.round(total), 6 * 3600 * 1000) });
        }
        flush(true);
      } else {
        visibleSince = Date.now();
      }
    });
  }

  window.aisleTrack = track;  // for other scripts (e.g. the chat widget)
  watchRecommendations();
  watchDwell();
  window.addEventListener("pagehide", function () { flush(true); });
  window.setInterval(function () { flush(false); }, 5000);
  flush(false);
})();
