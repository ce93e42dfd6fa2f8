// "Use my location" at checkout: for an address the map cannot place, the
// browser's geolocation fills the form's hidden lat/lon (store/_locate.html).
// Nothing is sent anywhere until the customer places the order.
(function () {
  "use strict";
  var box = document.querySelector("[data-locate]");
  if (!box || !navigator.geolocation) { return; }
  var button = box.querySelector("[data-locate-button]");
  var status = box.querySelector("[data-locate-status]");
  var lat = document.getElementById("lat");
  var lon = document.getElementById("lon");
  // The words, in the page's language (store/_locate.html).
  var asking = box.getAttribute("data-asking") || "Asking your device where you are…";
  var got = box.getAttribute("data-got") || "Got it: we will use where you are now. Place the order again.";
  var refused = box.getAttribute("data-refused") || "Your device did not share its location. Check the address instead.";
  button.hidden = false;
  button.addEventListener("click", function () {
    status.textContent = asking;
    navigator.geolocation.getCurrentPosition(function (position) {
      lat.value = position.coords.latitude.toFixed(5);
      lon.value = position.coords.longitude.toFixed(5);
      status.textContent = got;
    }, function () {
      status.textContent = refused;
    }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 600000 });
  });
}());
