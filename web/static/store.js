// Tell the page that embeds the store how tall the store is, so its iframe can fit.
// Nothing else: no trackers, no third-party code.
(function () {
  if (window.parent === window) return;
  var last = 0;
  function report() {
    // The body's own height: the document's scrollHeight never drops below the
    // frame's current height, so a frame sized by it could grow but never shrink.
    var height = Math.ceil(document.body.getBoundingClientRect().height);
    if (height !== last) {
      last = height;
      window.parent.postMessage({ broker: "resize", height: height }, "*");
    }
  }
  window.addEventListener("load", report);
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.body);
  setInterval(report, 500);
})();

// A form's error summary takes the focus (autofocus does it where supported; this
// is for the rest), so a screen reader reads what to fix first.
(function () {
  var summary = document.getElementById("error-summary");
  if (summary && document.activeElement !== summary) summary.focus();
})();
