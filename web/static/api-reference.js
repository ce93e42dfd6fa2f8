// The API reference: Swagger UI (static/vendor/swagger-ui) drawing the OpenAPI
// document named by the page's data-spec-url. A file of ours rather than an inline
// script, because the page's Content-Security-Policy admits scripts from Broker only.
(function () {
  "use strict";
  var root = document.getElementById("api-reference");
  if (!root || typeof window.SwaggerUIBundle !== "function") return;
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    // Only Broker's document: a link such as /api/v1/docs?url=https://elsewhere/doc.json
    // must not make this page draw someone else's (Swagger UI's default, said here).
    queryConfigEnabled: false,
    // A reference, not a console: no "Try it out" (a call from here would be as real
    // as any other: an order authorises a card), so the page sends no API calls.
    supportedSubmitMethods: [],
    tryItOutEnabled: false,
    // Swagger UI would otherwise send the document to its authors' online validator.
    validatorUrl: null,
    // Plain examples: the highlighter colours them with inline styles too faint on its
    // dark background (axe-core: colour contrast).
    syntaxHighlight: false,
    // Without deep links an operation's path is text, not a link inside its toggle button
    // (axe-core: nested interactive controls).
    deepLinking: false,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    defaultModelExpandDepth: 3,
    displayOperationId: false,
    filter: true
  });

  // Swagger UI's button that folds an open property of a schema holds only an arrow
  // drawn in CSS, so a screen reader hears "button" (axe-core: button-name). Name each
  // such button after its property whenever Swagger UI draws one.
  function nameToggles() {
    root.querySelectorAll("button.model-box-control").forEach(function (button) {
      if (button.hasAttribute("aria-label") || button.textContent.trim()) return;
      var row = button.closest("tr");
      var name = row && row.firstElementChild ? row.firstElementChild.textContent.trim() : "";
      button.setAttribute("aria-label", name ? "Details of " + name : "Details");
    });
  }
  new MutationObserver(nameToggles).observe(root, { childList: true, subtree: true });
})();
