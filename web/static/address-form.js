// The address fieldset re-shaped for the chosen country (the `address_fields`
// macro's markup, built from GET /api/v1/address-formats/<country>): its fields,
// their names and which are required. Without this script the form still works:
// the "Show the address form for this country" button asks the server.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var fieldset = document.querySelector("fieldset.address-fields");
  if (!fieldset) return;
  var select = fieldset.querySelector("select[name=country]");
  if (!select) return;
  var prefix = select.id.slice(0, select.id.length - "country".length);
  // The page's words for what this script writes, in the page's language (address.html).
  var words = {
    optional: fieldset.getAttribute("data-optional") || "(optional)",
    choose: fieldset.getAttribute("data-choose") || "Choose…",
    example: fieldset.getAttribute("data-example") || "For example {}"
  };
  var language = document.documentElement.getAttribute("lang") || "en";

  function values() {
    var kept = {};
    fieldset.querySelectorAll("input[name], select[name]").forEach(function (el) { kept[el.name] = el.value; });
    return kept;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function build(format, kept) {
    fieldset.querySelectorAll(".address-field").forEach(function (div, i) { if (i > 0) div.remove(); });
    fieldset.setAttribute("data-country", format.country);
    format.fields.forEach(function (f) {
      var id = prefix + f.name;
      var div = el("div", { "class": "address-field" });
      var label = el("label", { "for": id }, f.label);
      if (!f.required) {
        label.appendChild(document.createTextNode(" "));
        label.appendChild(el("span", { "class": "optional" }, words.optional));
      }
      div.appendChild(label);
      var input;
      var value = kept[f.name] || "";
      if (f.choices && f.choices.length) {
        input = el("select", { id: id, name: f.name, autocomplete: f.autocomplete });
        input.appendChild(el("option", { value: "" }, words.choose));
        f.choices.forEach(function (c) {
          var option = el("option", { value: c.value }, c.label);
          if (c.value === value) option.selected = true;
          input.appendChild(option);
        });
      } else {
        input = el("input", { id: id, name: f.name, autocomplete: f.autocomplete,
                              maxlength: f.name === "postal_code" ? "20" : "200" });
        input.value = value;
      }
      if (f.required) input.setAttribute("required", "");
      div.appendChild(input);
      if (f.example) {
        input.setAttribute("aria-describedby", id + "-hint");
        div.appendChild(el("span", { "class": "hint", id: id + "-hint" }, words.example.replace("{}", f.example)));
      }
      fieldset.appendChild(div);
    });
  }

  select.addEventListener("change", function () {
    var kept = values();
    var form = fieldset.closest("form");
    var base = (form && form.getAttribute("data-format-url")) || "/api/v1/address-formats/";
    var url = base + encodeURIComponent(select.value) + "?lang=" + encodeURIComponent(language);
    fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (format) { if (format) build(format, kept); })
      .catch(function () { /* the no-script button still works */ });
  });
})();
