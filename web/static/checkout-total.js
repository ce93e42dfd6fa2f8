// The checkout's subtotal, shipping, tax and total, asked of the server again
// (POST .../checkout/total) when what decides them changes: the country, region,
// postal code, city, pickup or shipping, and the shipping method. The lines come
// back written in the page's language; they are put in as text. Without this
// script the page shows them whenever the server renders it.
(function () {
  "use strict";
  var form = document.querySelector("form.checkout[data-total-url]");
  var foot = document.getElementById("order-totals");
  var note = document.getElementById("totals-note");
  if (!form || !foot || !window.fetch || !window.FormData) return;
  var deciding = ["country", "region", "postal_code", "city", "delivery", "shipping_method"];
  var goods = foot.innerHTML;  // the goods alone, as the page came
  var timer = null;
  var asked = 0;

  function row(line) {
    var tr = document.createElement("tr");
    if (line.total) tr.className = "total";
    var th = document.createElement("th");
    th.scope = "row";
    th.colSpan = 3;
    th.textContent = line.label;
    var td = document.createElement("td");
    td.className = line.total ? "num price" : "num";
    if (line.total) td.id = "order-total";
    td.textContent = line.amount;
    tr.appendChild(th);
    tr.appendChild(td);
    return tr;
  }

  function show(body) {
    if (body.lines && body.lines.length) {
      while (foot.firstChild) foot.removeChild(foot.firstChild);
      body.lines.forEach(function (line) { foot.appendChild(row(line)); });
    } else {
      foot.innerHTML = goods;  // the page's own markup, from the server
    }
    if (note) note.textContent = body.note || "";
  }

  function ask() {
    var data = new FormData(form);
    data.delete("form_key");  // nothing is placed: the form's one-time key stays unused
    var mine = ++asked;
    fetch(form.getAttribute("data-total-url"), {
      method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" }
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body && mine === asked) show(body); })
      .catch(function () { /* the totals are worked out again when the order is placed */ });
  }

  form.addEventListener("change", function (event) {
    if (!event.target || deciding.indexOf(event.target.name) < 0) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(ask, 200);
  });
})();
