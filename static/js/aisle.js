/* Aisle storefront: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  // On narrow screens the filter sidebar starts folded, unless a filter value needs fixing.
  var filters = document.querySelector(".filters-toggle");
  if (filters && window.matchMedia("(max-width: 860px)").matches && !document.getElementById("filter-errors")) {
    filters.open = false;
  }

  // Filters and sort apply as soon as they change (the "Apply filters" button remains for no-JS).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!el.classList || !el.classList.contains("js-autosubmit") || !el.form) return;
    if (typeof el.form.requestSubmit === "function") el.form.requestSubmit();
    else el.form.submit();
  });

  // Guard against double submits of forms that move money or stock.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "checkout-form" && !form.classList.contains("add-to-cart-form")) return;
    if (form.dataset.submitting === "1") { event.preventDefault(); return; }
    form.dataset.submitting = "1";
    var button = form.querySelector("button[type=submit]");
    if (button) button.setAttribute("aria-busy", "true");
  });

  // A page restored from the back/forward cache must be submittable again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-submitting]").forEach(function (form) {
      delete form.dataset.submitting;
      var button = form.querySelector("button[aria-busy]");
      if (button) button.removeAttribute("aria-busy");
    });
  });
})();
