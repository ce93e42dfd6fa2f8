/* The portal's maps (board and stores), drawn with the vendored Leaflet.
 *
 * Each map is an element with `data-portal-map="<id>"`, where <id> is a
 * <script type="application/json"> block holding {stores: [...], listings: [...]}.
 * No tile server: the base layer is country and US state outlines from the
 * vendored world-atlas and us-atlas TopoJSON files (fetched from this site,
 * turned into GeoJSON by the vendored topojson-client), so the map works offline
 * and sends nothing to a third party. On top: the stores and their service
 * radius, then the listings in a pane of their own above the store markers,
 * clustered by the vendored leaflet.markercluster when they crowd; a legend says
 * what each mark is. Every text shown comes from the data through textContent,
 * never as HTML.
 */
(function () {
  "use strict";

  var STORE = "#0b5cad";
  var CLOSED = "#8a96a3";
  var LISTING = "#c2410c";
  var MINE = "#1a7f37";
  var KM_PER_DEGREE = 111.2;
  // One fetch per outline file per page, shared by the page's maps.
  var outlines = {};

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

  function topology(url) {
    if (!outlines[url]) {
      outlines[url] = fetch(url, { credentials: "same-origin" }).then(function (response) {
        if (!response.ok) { throw new Error("outlines: " + response.status); }
        return response.json();
      });
    }
    return outlines[url];
  }

  // Country and state outlines under everything else, in a pane of their own.
  function drawBase(map, container) {
    map.createPane("portal-base");
    var world = container.getAttribute("data-outlines-world");
    var states = container.getAttribute("data-outlines-states");
    var layers = [];
    if (world) {
      layers.push(topology(world).then(function (topo) {
        L.geoJSON(topojson.feature(topo, topo.objects.countries), {
          pane: "portal-base", interactive: false,
          style: function () { return { className: "portal-country", color: "#8d99a6", weight: 1, fillColor: "#f7f4ec", fillOpacity: 1 }; }
        }).addTo(map);
      }));
    }
    if (states) {
      layers.push(topology(states).then(function (topo) {
        L.geoJSON(topojson.mesh(topo, topo.objects.states, function (a, b) { return a !== b; }), {
          pane: "portal-base", interactive: false,
          style: function () { return { className: "portal-state", color: "#a7b1bc", weight: 1, dashArray: "4 3", fill: false }; }
        }).addTo(map);
      }));
    }
    return Promise.all(layers);
  }

  function legendControl(showListings) {
    var control = L.control({ position: "bottomleft" });
    control.onAdd = function () {
      var box = el("div", null, "portal-legend");
      box.setAttribute("role", "group");
      box.setAttribute("aria-label", "Map legend");
      function row(swatch, text) {
        var item = el("div", null, "portal-legend-row");
        item.appendChild(el("span", null, "portal-swatch " + swatch));
        item.appendChild(el("span", text));
        box.appendChild(item);
      }
      row("portal-swatch-store", "Your store (open)");
      row("portal-swatch-closed", "Closed store");
      row("portal-swatch-radius", "Service radius");
      if (showListings) {
        row("portal-swatch-listing", "Listing (within about 2 km)");
        row("portal-swatch-mine", "Listing you bid on");
        row("portal-swatch-cluster", "Several listings: click to zoom");
      }
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    return control;
  }

  function draw(container) {
    var source = document.getElementById(container.getAttribute("data-portal-map"));
    if (!source || typeof L === "undefined") { return; }
    var data = JSON.parse(source.textContent || "{}");
    var stores = data.stores || [];
    var listings = data.listings || [];
    // With no tile layer, the map has no zoom range of its own: clustering needs one.
    var map = L.map(container, { zoomSnap: 0.25, scrollWheelZoom: false, minZoom: 2, maxZoom: 16 });
    map.attributionControl.setPrefix("Leaflet");
    map.attributionControl.addAttribution("Outlines: Natural Earth, US Census Bureau");

    var bounds = L.latLngBounds([]);
    stores.forEach(function (s) { bounds.extend(circleBounds(s.lat, s.lon, s.radius_km)); });
    listings.forEach(function (l) { bounds.extend([l.lat, l.lon]); });
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [16, 16] });
    } else {
      map.setView([39.5, -98.35], 3);
    }

    var base = typeof topojson === "undefined" ? Promise.resolve() : drawBase(map, container);

    stores.forEach(function (s) {
      var color = s.open ? STORE : CLOSED;
      L.circle([s.lat, s.lon], {
        radius: s.radius_km * 1000, color: color, weight: 2, fillColor: color, fillOpacity: 0.06,
        className: "portal-radius portal-radius-" + s.id, interactive: false
      }).addTo(map);
      var marker = L.marker([s.lat, s.lon], { title: s.name, alt: "Store: " + s.name, keyboard: true, zIndexOffset: -100 })
        .bindPopup(storePopup(s))
        .addTo(map);
      marker.getElement().classList.add("portal-store", "portal-store-" + s.id);
      if (!s.open) { marker.getElement().classList.add("portal-store-closed"); }
    });

    // Listings in a pane of their own, above the store markers (app.css gives
    // it its z-index), so a listing next to a store stays clickable; crowded
    // ones are clustered, and a cluster opens when clicked.
    map.createPane("portal-listings");
    var group = typeof L.markerClusterGroup === "function" ? L.markerClusterGroup({
      clusterPane: "portal-listings", showCoverageOnHover: false, maxClusterRadius: 40,
      spiderfyOnMaxZoom: true,
      iconCreateFunction: function (cluster) {
        var count = cluster.getChildCount();
        var label = el("span", String(count));
        label.setAttribute("aria-label", count + " listings here");
        return L.divIcon({ className: "portal-cluster", iconSize: L.point(34, 34), html: label });
      }
    }) : L.featureGroup();
    listings.forEach(function (l) {
      var color = l.bid ? MINE : LISTING;
      L.circleMarker([l.lat, l.lon], {
        pane: "portal-listings", radius: 8, color: "#ffffff", weight: 2, fillColor: color, fillOpacity: 0.9,
        className: "portal-listing portal-listing-" + l.id + (l.bid ? " portal-listing-bid" : "")
      }).bindPopup(listingPopup(l)).addTo(group);
    });
    group.addTo(map);
    legendControl(listings.length > 0 || container.hasAttribute("data-listings")).addTo(map);

    base.then(function () {
      container.setAttribute("data-outlines", "true");
    }, function () {
      container.setAttribute("data-outlines", "failed");
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
