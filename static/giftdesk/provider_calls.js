// An order's provider calls (templates/admin/orders/order/provider_calls.html) are collapsed;
// following a "Caused by" link (#call-12) in the history opens the call it names.
"use strict";
(function () {
  function openTarget() {
    var id = window.location.hash.slice(1);
    var call = id && document.getElementById(id);
    if (call && call.tagName === "DETAILS") {
      call.open = true;
      call.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
