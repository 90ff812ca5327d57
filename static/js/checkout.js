// Checkout: the "Place order" button disables itself on submit, so a double-click sends one request.
// (The server is idempotent anyway: the form's hidden idempotency key makes a repeat find the first order.)
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form) return;
  var button = document.getElementById("place-order");
  var label = button ? button.textContent : "";
  var submitted = false;
  form.addEventListener("submit", function (event) {
    if (submitted) {
      event.preventDefault();
      return;
    }
    submitted = true;
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      if (button.dataset.busyLabel) button.textContent = button.dataset.busyLabel;
    }
  });
  // Back/forward cache: a page restored after navigating away must be usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    submitted = false;
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  });
})();
