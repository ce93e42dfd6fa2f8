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
    // A reference, not a console: no "Try it out" (a call from here would be as real
    // as any other: an order authorises a card), so the page sends no API calls.
    supportedSubmitMethods: [],
    // Swagger UI would otherwise send the document to its authors' online validator.
    validatorUrl: null,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    defaultModelExpandDepth: 3,
    displayOperationId: false,
    filter: true,
    showExtensions: true,
    tryItOutEnabled: false
  });
})();
