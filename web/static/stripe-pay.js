// Mounts Stripe's Payment Element for an order's PaymentIntent and confirms it.
// Card details go from the customer's browser to Stripe; Broker never sees them.
(function () {
  var form = document.getElementById("payment-form");
  if (!form || !window.Stripe) return;
  var stripe = window.Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
  elements.create("payment").mount("#payment-element");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    document.getElementById("pay").disabled = true;
    stripe.confirmPayment({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } })
      .then(function (result) {
        if (result.error) {
          document.getElementById("payment-message").textContent = result.error.message;
          document.getElementById("pay").disabled = false;
        }
      });
  });
})();
