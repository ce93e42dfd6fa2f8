/* The portal's maps (board and stores), drawn with the vendored Leaflet.
 *
 * Each map is an element with `data-portal-map="<id>"`, where <id> is a
 * <script type="application/json"> block holding {stores: [...], listings: [...]}.
 * No tile layer: the map works offline and sends nothing to a third party; the
 * stores, their service radius and the listings are drawn on a blank canvas.
 * Every text shown comes from the data through textContent, never as HTML.
 */
(function () {
  "use strict";

  var STORE = "#0b5cad";
  var CLOSED = "#8a96a3";
  var LISTING = "#c2410c";
  var MINE = "#1a7f37";
  var KM_PER_DEGREE = 111.2;

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function money(amount, currency) {
    var digits = ["JPY", "KRW", "CLP", "ISK", "VND", "XAF", "XOF"].indexOf(currency) >= 0 ? 0
      : (["BHD", "JOD", "KWD", "OMR", "TND"].indexOf(currency) >= 0 ? 3 : 2);
    return (amount / Math.pow(10, digits)).toFixed(digits) + " " + currency;
  }

  // The bounds of a circle, without needing the map to be drawn yet.
  function circleBounds(lat, lon, km) {
    var dLat = km / KM_PER_DEGREE;
    var dLon = km / (KM_PER_DEGREE * Math.max(Math.cos(lat * Math.PI / 180), 0.01));
    return L.latLngBounds([lat - dLat, lon - dLon], [lat + dLat, lon + dLon]);
  }

  function storePopup(store) {
    var box = el("div", null, "portal-popup");
    box.appendChild(el("strong", store.name));
    box.appendChild(el("div", "Serves " + store.radius_km + " km around" + (store.open ? "" : " (closed)")));
    return box;
  }

  function listingPopup(item) {
    var box = el("div", null, "portal-popup");
    box.appendChild(el("strong", "Listing #" + item.id + (item.kind === "request" ? " · request" : " · order")));
    box.appendChild(el("div", item.label));
    box.appendChild(el("div", (item.kind === "request" ? "Up to " : "") + money(item.price, item.currency)));
    box.appendChild(el("div", "about " + item.distance_km + " km · " + item.area));
    var link = el("a", item.bid ? "You bid: see it in the list" : "Bid in the list");
    link.href = "#listing-" + item.id;
    box.appendChild(link);
    return box;
  }

  function draw(container) {
    var source = document.getElementById(container.getAttribute("data-portal-map"));
    if (!source || typeof L === "undefined") { return; }
    var data = JSON.parse(source.textContent || "{}");
    var stores = data.stores || [];
    var listings = data.listings || [];
    var map = L.map(container, { zoomSnap: 0.25, scrollWheelZoom: false });
    map.attributionControl.setPrefix("Leaflet");

    var bounds = L.latLngBounds([]);
    stores.forEach(function (s) { bounds.extend(circleBounds(s.lat, s.lon, s.radius_km)); });
    listings.forEach(function (l) { bounds.extend([l.lat, l.lon]); });
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [16, 16] });
    } else {
      map.setView([39.5, -98.35], 3);
    }

    stores.forEach(function (s) {
      var color = s.open ? STORE : CLOSED;
      L.circle([s.lat, s.lon], {
        radius: s.radius_km * 1000, color: color, weight: 2, fillColor: color, fillOpacity: 0.06,
        className: "portal-radius portal-radius-" + s.id, interactive: false
      }).addTo(map);
      L.marker([s.lat, s.lon], { title: s.name, alt: "Store: " + s.name, keyboard: true })
        .bindPopup(storePopup(s))
        .addTo(map)
        .getElement().classList.add("portal-store", "portal-store-" + s.id);
    });

    // Listings in a pane of their own, above the store markers (app.css gives
    // it its z-index), so a listing next to a store stays clickable.
    map.createPane("portal-listings");
    listings.forEach(function (l) {
      var color = l.bid ? MINE : LISTING;
      L.circleMarker([l.lat, l.lon], {
        pane: "portal-listings", radius: 8, color: "#ffffff", weight: 2, fillColor: color, fillOpacity: 0.9,
        className: "portal-listing portal-listing-" + l.id + (l.bid ? " portal-listing-bid" : "")
      }).bindPopup(listingPopup(l)).addTo(map);
    });

    container.setAttribute("data-ready", "true");
  }

  function start() {
    var maps = document.querySelectorAll("[data-portal-map]");
    for (var i = 0; i < maps.length; i++) { draw(maps[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
