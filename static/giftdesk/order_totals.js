// The order list's totals (templates/admin/orders/order/totals_box.html): fetched after the list
// has loaded, with the list's own filters and search, into the box above it; at once when a
// filter or search narrows the list (data-totals-auto), else when the box's link is clicked (the
// whole table takes seconds at a million orders). The list never waits for them; without this
// script the link opens the same totals as a page.
"use strict";
(function () {
  function say(box, text) {
    var status = box.querySelector(".giftdesk-totals-status");
    if (!status) {
      status = document.createElement("p");
      status.className = "giftdesk-totals-status";
      box.appendChild(status);
    }
    status.textContent = text;
    return status;
  }

  function load(box) {
    if (box.getAttribute("aria-busy") === "true") {
      return;  // a second click while the first is adding up
    }
    var url = box.getAttribute("data-totals-url");
    var link = box.querySelector("#order-totals-link");
    var status = say(box, "Adding up the totals of these orders…");
    box.setAttribute("aria-busy", "true");
    fetch(url, {credentials: "same-origin", headers: {"X-GiftDesk-Fragment": "totals"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the server answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        box.innerHTML = html;  // our own page, escaped by Django's templates
        box.setAttribute("data-loaded", "true");
      })
      .catch(function (error) {
        // The link stays, to try again.
        status.textContent = "The totals could not be loaded (" + error.message + "). ";
        if (link) {
          status.appendChild(link);
        }
      })
      .finally(function () {
        box.removeAttribute("aria-busy");
      });
  }

  function start() {
    var box = document.getElementById("order-totals");
    if (!box || !box.getAttribute("data-totals-url")) {
      return;
    }
    if (box.getAttribute("data-totals-auto") === "true") {
      load(box);
      return;
    }
    var link = box.querySelector("#order-totals-link");
    if (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        load(box);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
