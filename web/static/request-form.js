// The request form: the currency follows the country chosen, until the customer
// picks a currency themselves. Nothing else; no third-party code.
(function () {
  var country = document.getElementById("country");
  var currency = document.getElementById("currency");
  if (!country || !currency) return;
  var byCountry = {};
  var form = country.closest("form");
  try { byCountry = JSON.parse((form && form.dataset.currencies) || "{}"); } catch (e) { return; }
  var chosen = false;
  currency.addEventListener("change", function () { chosen = true; });
  country.addEventListener("change", function () {
    var code = byCountry[country.value];
    if (!chosen && code && currency.querySelector('option[value="' + code + '"]')) currency.value = code;
  });
})();
