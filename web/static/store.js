// Tell the page that embeds the store how tall the store is, so its iframe can fit.
// Nothing else: no trackers, no third-party code.
(function () {
  if (window.parent === window) return;
  var last = 0;
  function report() {
    var height = document.documentElement.scrollHeight;
    if (height !== last) {
      last = height;
      window.parent.postMessage({ broker: "resize", height: height }, "*");
    }
  }
  window.addEventListener("load", report);
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.body);
  setInterval(report, 500);
})();
