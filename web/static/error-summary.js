// A form that came back with errors: its summary takes focus, so that a screen
// reader announces it and the keyboard starts from it.
(function () {
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
