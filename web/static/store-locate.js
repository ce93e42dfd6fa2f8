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
  button.hidden = false;
  button.addEventListener("click", function () {
    status.textContent = "Asking your device where you are…";
    navigator.geolocation.getCurrentPosition(function (position) {
      lat.value = position.coords.latitude.toFixed(5);
      lon.value = position.coords.longitude.toFixed(5);
      status.textContent = "Got it: we will use where you are now. Place the order again.";
    }, function () {
      status.textContent = "Your device did not share its location. Check the address instead.";
    }, { enableHighAccuracy: false, timeout: 15000, maximumAge: 600000 });
  });
}());
