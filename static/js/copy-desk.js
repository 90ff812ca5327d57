/* The copy desk's progress bar: polls the batch's progress endpoint and updates the bar and each draft's
   row (text only: nothing from the server is inserted as HTML). Stops when every draft is done. */
(function () {
  "use strict";

  function poll(root) {
    var url = root.getAttribute("data-progress-url");
    var bar = document.getElementById("copy-progress");
    var label = document.getElementById("copy-progress-label");
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (!state) return;
        bar.max = state.total;
        bar.value = state.done;
        label.textContent = state.done + " of " + state.total + " draft" + (state.total === 1 ? "" : "s") + " written";
        state.drafts.forEach(function (draft) {
          var row = root.querySelector('tr[data-draft="' + draft.id + '"]');
          if (!row) return;
          var status = row.querySelector(".copy-status");
          status.textContent = draft.status_label;
          status.className = "copy-status copy-status--" + draft.status;
          row.querySelector(".copy-flags").textContent = String(draft.flags);
          row.querySelector(".copy-error").textContent = draft.error;
        });
        if (!state.finished) window.setTimeout(function () { poll(root); }, 1500);
        else root.classList.add("copy-batch--finished");
      })
      .catch(function () { window.setTimeout(function () { poll(root); }, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector(".copy-batch[data-progress-url]");
    if (root) poll(root);
  });
})();
