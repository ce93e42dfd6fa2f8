// Mounts a Broker storefront where this script tag stands, in an iframe that
// resizes to its content. Only origins the store lists may frame it.
(function () {
  var script = document.currentScript;
  var frame = document.createElement("iframe");
  frame.src = {{ src|tojson }};
  frame.title = script.getAttribute("data-title") || "Shop";
  frame.style.width = "100%";
  frame.style.border = "0";
  frame.style.minHeight = "480px";
  frame.setAttribute("loading", "lazy");
  script.parentNode.insertBefore(frame, script.nextSibling);
  window.addEventListener("message", function (event) {
    if (event.origin !== {{ origin|tojson }} || event.source !== frame.contentWindow) return;
    if (event.data && event.data.broker === "resize" && typeof event.data.height === "number") {
      frame.style.height = Math.ceil(event.data.height) + "px";
    }
  });
})();
