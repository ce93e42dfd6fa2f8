// Money pages: a form that came back with errors moves focus to its summary,
// so a screen reader announces what is wrong and the keyboard starts there.
(function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) summary.focus();
})();
