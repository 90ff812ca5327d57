/* Support console (admin). Queue page: polls the tab counts and offers a refresh when they change.
 * Conversation page: polls for new messages, draws the mood chart, fills the reply box from suggestions
 * and canned responses (/shortcut), and sends replies without reloading.
 *
 * Data comes from json_script elements (#sc-counts, #sc-data, #sc-intents); every text a shopper or
 * the assistant wrote is set with textContent, never parsed as HTML. Without JavaScript every form
 * still posts and redirects back. */
(function () {
  "use strict";

  var POLL_MS = 3000;
  var QUEUE_POLL_MS = 5000;

  function json(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) { return input.value; }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }
  function safeUrl(url) {
    if (typeof url !== "string") { return null; }
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") { return url; }
    return /^https?:\/\//i.test(url) ? url : null;
  }

  // --- queue page -------------------------------------------------------------------------------
  function queuePage(root) {
    var initial = json("sc-counts") || {};
    var status = root.getAttribute("data-status");
    var notice = document.getElementById("sc-refresh");
    function tick() {
      if (document.hidden) { return; }
      getJSON(root.getAttribute("data-counts-url")).then(function (data) {
        Object.keys(data.counts).forEach(function (key) {
          var badge = root.querySelector('[data-count="' + key + '"]');
          if (badge) {
            badge.textContent = data.counts[key];
            badge.classList.toggle("sc-count--hot", key === "waiting" && data.counts[key] > 0);
          }
        });
        if (data.counts[status] !== initial[status] || data.counts.waiting !== initial.waiting) { notice.hidden = false; }
      }).catch(function () { /* next tick */ });
    }
    window.setInterval(tick, QUEUE_POLL_MS);
  }

  // --- conversation page ------------------------------------------------------------------------
  function conversationPage(root) {
    var data = json("sc-data");
    var intents = json("sc-intents") || [];
    var log = document.getElementById("sc-log");
    var textarea = document.getElementById("sc-reply-text");
    var form = document.getElementById("sc-reply-form");
    var replyStatus = document.getElementById("sc-reply-status");
    var canned = document.getElementById("sc-canned");
    var lastId = data.last_id || 0;
    var status = data.status;
    var chart = null;
    var shortcuts = {};

    Array.prototype.forEach.call(canned.options, function (option) {
      if (option.value) { shortcuts[option.value] = option.getAttribute("data-body"); }
    });

    function scrollLog() { log.scrollTop = log.scrollHeight; }

    function intentUrl(messageId) {
      return data.urls.messages.replace(/messages\.json$/, "messages/" + messageId + "/intent/");
    }

    function renderMessage(message) {
      if (log.querySelector('[data-message-id="' + message.id + '"]')) { return; }
      var item = el("li", "sc-msg sc-msg--" + message.sender);
      item.setAttribute("data-message-id", message.id);
      var meta = el("div", "sc-msg-meta");
      meta.appendChild(el("strong", "", message.author || message.sender_label));
      meta.appendChild(el("time", "", new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false })));
      if (message.sender === "shopper" && message.mood !== null) {
        meta.appendChild(el("span", message.mood < -0.3 ? "sc-neg" : (message.mood > 0.3 ? "sc-pos" : ""),
                            "mood " + message.mood.toFixed(2) + (message.mood_label ? " (" + message.mood_label + ")" : "")));
      }
      item.appendChild(meta);
      item.appendChild(el("div", "sc-bubble", message.text));
      var sources = (message.sources || []).filter(function (s) { return s && s.title; });
      if (sources.length) {
        var list = el("ul", "sc-sources");
        sources.forEach(function (source) {
          var li = el("li", "", (source.type || "source") + ": ");
          var href = safeUrl(source.url);
          if (href) {
            var link = el("a", "", source.title);
            link.href = href; link.target = "_blank"; link.rel = "noopener";
            li.appendChild(link);
          } else {
            li.appendChild(document.createTextNode(source.title));
          }
          list.appendChild(li);
        });
        item.appendChild(list);
      }
      if (message.sender === "shopper") { item.appendChild(intentBox(message)); }
      log.appendChild(item);
      if (message.sender === "shopper" && message.mood !== null) { addMood(message); }
    }

    function intentBox(message) {
      var box = el("div", "sc-intent");
      var label = el("span", "", "Intent: ");
      label.appendChild(el("strong", "", message.intent || "—"));
      box.appendChild(label);
      var correction = el("form");
      correction.method = "post";
      correction.action = intentUrl(message.id);
      var token = el("input");
      token.type = "hidden"; token.name = "csrfmiddlewaretoken"; token.value = csrfToken();
      correction.appendChild(token);
      var select = el("select");
      select.name = "intent";
      select.setAttribute("aria-label", "Correct intent");
      if (!message.intent && !message.corrected_intent) {
        // While a person has the chat the assistant does not classify: the agent can label it here.
        var blank = el("option", "", "Label it…");
        blank.value = ""; blank.disabled = true; blank.selected = true;
        select.appendChild(blank);
      }
      intents.forEach(function (pair) {
        var option = el("option", "", pair[1]);
        option.value = pair[0];
        option.selected = !!(message.corrected_intent || message.intent) &&
          pair[0] === (message.corrected_intent || message.intent);
        select.appendChild(option);
      });
      correction.appendChild(select);
      var button = el("button", "button", "Correct");
      button.type = "submit";
      correction.appendChild(button);
      box.appendChild(correction);
      return box;
    }

    function setStatus(next, label) {
      if (!next || next === status) { return; }
      status = next;
      var pill = document.getElementById("sc-status");
      pill.textContent = label || next;
      pill.className = "sc-pill sc-pill--" + next;
    }

    function poll() {
      if (document.hidden) { return; }
      getJSON(data.urls.messages + "?after=" + lastId).then(function (result) {
        var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        result.messages.forEach(function (message) {
          renderMessage(message);
          if (message.id > lastId) { lastId = message.id; }
        });
        setStatus(result.status, result.status_label);
        if (result.messages.length && atBottom) { scrollLog(); }
      }).catch(function () { /* next tick */ });
    }

    // Mood chart: one point per scored shopper message, -1 (angry) to 1 (happy).
    function drawChart() {
      var canvas = document.getElementById("sc-mood-chart");
      if (!canvas || !window.Chart) { return; }
      chart = new window.Chart(canvas, {
        type: "line",
        data: {
          labels: data.mood.map(function (p) { return new Date(p.t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false }); }),
          datasets: [{ label: "Mood", data: data.mood.map(function (p) { return p.mood; }), borderColor: "#4338ca",
                       backgroundColor: "rgba(67, 56, 202, .12)", fill: true, tension: 0.3, pointRadius: 4,
                       pointBackgroundColor: data.mood.map(function (p) { return p.mood < -0.3 ? "#ba2121" : (p.mood > 0.3 ? "#1b7a2f" : "#4338ca"); }) }]
        },
        options: {
          maintainAspectRatio: false, plugins: { legend: { display: false },
            tooltip: { callbacks: { afterLabel: function (ctx) { var p = data.mood[ctx.dataIndex]; return p ? p.text : ""; } } } },
          scales: { y: { min: -1, max: 1, ticks: { stepSize: 0.5 } } }
        }
      });
    }

    function addMood(message) {
      data.mood.push({ t: message.created_at, mood: message.mood, label: message.mood_label, text: message.text.slice(0, 80) });
      if (chart) {
        chart.data.labels.push(new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false }));
        chart.data.datasets[0].data.push(message.mood);
        chart.data.datasets[0].pointBackgroundColor.push(message.mood < -0.3 ? "#ba2121" : (message.mood > 0.3 ? "#1b7a2f" : "#4338ca"));
        chart.update();
      }
    }

    function insert(text) {
      var start = textarea.selectionStart || 0;
      var end = textarea.selectionEnd || 0;
      var before = textarea.value.slice(0, start);
      var after = textarea.value.slice(end);
      var spacer = before && !/\s$/.test(before) ? " " : "";
      textarea.value = before + spacer + text + after;
      var caret = (before + spacer + text).length;
      textarea.focus();
      textarea.setSelectionRange(caret, caret);
    }

    // "/shortcut" followed by a space (or Tab) becomes the canned response's text.
    function expandShortcut() {
      var caret = textarea.selectionStart;
      var head = textarea.value.slice(0, caret);
      var match = head.match(/(^|\s)\/([\w-]+)(\s?)$/);
      if (!match || !shortcuts[match[2]]) { return false; }
      var tokenStart = caret - match[2].length - 1 - match[3].length;
      textarea.value = textarea.value.slice(0, tokenStart) + shortcuts[match[2]] + textarea.value.slice(caret);
      var next = tokenStart + shortcuts[match[2]].length;
      textarea.setSelectionRange(next, next);
      return true;
    }

    textarea.addEventListener("input", function (event) {
      if (event.data === " ") { expandShortcut(); }
    });
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Tab" && expandShortcut()) { event.preventDefault(); }
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
    });
    canned.addEventListener("change", function () {
      if (canned.value && shortcuts[canned.value]) { insert(shortcuts[canned.value]); }
      canned.value = "";
    });

    document.getElementById("sc-suggestions").addEventListener("click", function (event) {
      var button = event.target.closest(".sc-suggestion");
      if (!button) { return; }
      textarea.value = button.getAttribute("data-text");
      textarea.focus();
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      expandShortcut();
      var text = textarea.value.trim();
      if (/^\/[\w-]+$/.test(text) && shortcuts[text.slice(1)]) { text = shortcuts[text.slice(1)]; }
      if (!text) { replyStatus.textContent = "Write a reply first."; return; }
      var body = new FormData(form);
      body.set("text", text);
      var button = document.getElementById("sc-send");
      button.disabled = true;
      replyStatus.textContent = "Sending…";
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin",
                           headers: { "Accept": "application/json", "X-Requested-With": "fetch", "X-CSRFToken": csrfToken() } })
        .then(function (r) { return r.json().then(function (payload) { return { ok: r.ok, payload: payload }; }); })
        .then(function (result) {
          if (!result.ok) { replyStatus.textContent = result.payload.error || "Not sent."; return; }
          textarea.value = "";
          replyStatus.textContent = "Sent.";
          poll();
          if (result.payload.status !== data.status) {
            // Replying assigned the chat to this agent: the action buttons change, so show them fresh.
            window.setTimeout(function () { window.location.reload(); }, 400);
          }
        })
        .catch(function () { replyStatus.textContent = "Not sent — check your connection and try again."; })
        .then(function () { button.disabled = false; });
    });

    // The generator's suggestion can take seconds: fetched after the page is usable.
    getJSON(data.urls.suggestions).then(function (result) {
      var list = document.getElementById("sc-suggestions");
      (result.suggestions || []).forEach(function (suggestion) {
        var empty = document.getElementById("sc-no-suggestions");
        if (empty) { empty.remove(); }
        var li = el("li");
        var button = el("button", "sc-suggestion", suggestion.text);
        button.type = "button";
        button.setAttribute("data-text", suggestion.text);
        button.appendChild(el("small", "", suggestion.source));
        li.appendChild(button);
        list.insertBefore(li, list.firstChild);
      });
    }).catch(function () { /* optional */ });

    drawChart();
    scrollLog();
    window.setInterval(poll, POLL_MS);
  }

  function init() {
    var queue = document.querySelector(".sc-queue");
    if (queue) { queuePage(queue); }
    var conversation = document.querySelector(".sc-conversation");
    if (conversation) { conversationPage(conversation); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
