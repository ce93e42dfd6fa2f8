// The console's live storefront preview. The page's Content-Security-Policy
// admits no inline script or style: this file is served from 'self', and the
// colours reach the preview as CSS custom properties set through the CSSOM
// (element.style.setProperty), which that policy allows.
(function () {
  "use strict";
  var preview = document.querySelector("[data-preview]");
  if (!preview) return;
  var HEX = /^#[0-9a-fA-F]{6}$/;

  function setVar(name, value) {
    if (HEX.test(value)) preview.style.setProperty(name, value);
  }

  setVar("--console-preview-primary", preview.getAttribute("data-primary") || "");
  setVar("--console-preview-accent", preview.getAttribute("data-accent") || "");

  document.querySelectorAll("[data-preview-var]").forEach(function (input) {
    var update = function () { setVar(input.getAttribute("data-preview-var"), input.value); };
    input.addEventListener("input", update);
    input.addEventListener("change", update);
    update();
  });

  var FALLBACK = { logo: "No logo: the name stands in its place" };
  document.querySelectorAll("[data-preview-text]").forEach(function (input) {
    var key = input.getAttribute("data-preview-text");
    var update = function () {
      preview.querySelectorAll('[data-preview-show="' + key + '"]').forEach(function (target) {
        target.textContent = input.value.trim() || FALLBACK[key] || "";
      });
    };
    input.addEventListener("input", update);
  });
})();
