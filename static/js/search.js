/* Aisle search autocomplete: suggestions under the header search box as the shopper types.
 *
 * Markup contract (templates/base.html): an <input data-autocomplete-url="/api/search/autocomplete"
 * role="combobox" aria-controls="ID"> and an empty <ul id="ID" role="listbox" hidden> in the same form.
 * Requests are debounced and only the latest answer is drawn; arrow keys move through the list, Enter follows
 * the highlighted suggestion (or submits the typed query), Escape closes. Labels are set with textContent,
 * never as HTML. Styling is inline (CSSOM) so the widget needs no stylesheet change.
 */
(function () {
  "use strict";
  var input = document.querySelector("input[data-autocomplete-url]");
  if (!input || !window.fetch) { return; }
  var list = document.getElementById(input.getAttribute("aria-controls"));
  if (!list) { return; }
  var endpoint = input.getAttribute("data-autocomplete-url");
  var DEBOUNCE_MS = 150;
  var MAX_CHARS = 100;
  var KIND_LABELS = { category: "Category", brand: "Brand", product: "" };
  var timer = null;
  var latest = 0;
  var active = -1;
  var items = [];

  Object.assign(list.style, {
    position: "absolute", top: "100%", left: "0", right: "0", zIndex: "50", margin: "4px 0 0", padding: "4px 0",
    listStyle: "none", background: "#fff", border: "1px solid rgba(0,0,0,.15)", borderRadius: "8px",
    boxShadow: "0 8px 24px rgba(0,0,0,.12)", maxHeight: "60vh", overflowY: "auto"
  });

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function highlight(index) {
    var options = list.querySelectorAll("[role=option]");
    if (!options.length) { return; }
    active = (index + options.length) % options.length;
    options.forEach(function (option, i) {
      var on = i === active;
      option.setAttribute("aria-selected", on ? "true" : "false");
      option.style.background = on ? "rgba(0,0,0,.06)" : "";
    });
    input.setAttribute("aria-activedescendant", options[active].id);
    options[active].scrollIntoView({ block: "nearest" });
  }

  function render(suggestions) {
    items = suggestions;
    list.textContent = "";
    if (!suggestions.length) { close(); return; }
    suggestions.forEach(function (item, i) {
      var li = document.createElement("li");
      li.id = list.id + "-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.kind = item.kind;
      var link = document.createElement("a");
      link.href = item.url;
      link.tabIndex = -1;
      Object.assign(link.style, { display: "block", padding: "8px 14px", color: "inherit", textDecoration: "none" });
      if (KIND_LABELS[item.kind]) {
        var kind = document.createElement("small");
        kind.textContent = KIND_LABELS[item.kind] + " · ";
        kind.style.opacity = "0.7";
        link.appendChild(kind);
      }
      link.appendChild(document.createTextNode(item.label));
      li.appendChild(link);
      li.addEventListener("mousedown", function (event) { event.preventDefault(); });  // keep focus in the box
      li.addEventListener("mousemove", function () { if (active !== i) { highlight(i); } });
      list.appendChild(li);
    });
    active = -1;
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function fetchSuggestions() {
    var query = input.value.trim();
    if (!query || query.length > MAX_CHARS) { render([]); return; }
    var ticket = ++latest;
    fetch(endpoint + "?q=" + encodeURIComponent(query), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : { items: [] };  // 400 / 429: just no suggestions
    }).then(function (body) {
      if (ticket === latest) { render(Array.isArray(body.items) ? body.items : []); }
    }).catch(function () { /* offline: the plain search form still works */ });
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(fetchSuggestions, DEBOUNCE_MS);
  });
  input.addEventListener("keydown", function (event) {
    if (list.hidden) { return; }
    if (event.key === "ArrowDown") { event.preventDefault(); highlight(active + 1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); highlight(active - 1); }
    else if (event.key === "Escape") { close(); }
    else if (event.key === "Enter" && active >= 0 && items[active]) {
      event.preventDefault();
      window.location.assign(items[active].url);
    }
  });
  input.addEventListener("blur", function () { window.setTimeout(close, 100); });
  input.addEventListener("focus", function () {
    if (list.children.length) { list.hidden = false; input.setAttribute("aria-expanded", "true"); }
  });
})();
