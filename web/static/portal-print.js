/* A "Print" button on the packing slip: buttons with data-print open the
   browser's print dialog (the print stylesheet hides the navigation). */
(function () {
  "use strict";
  var buttons = document.querySelectorAll("[data-print]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function () { window.print(); });
  }
}());
