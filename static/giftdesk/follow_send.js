// Follow a send without pressing a key (templates/admin/orders/batch/progress.html): every few
// seconds ask the batch's progress as JSON and redraw the bar and its counts in place, so
// nothing the user is typing is lost. When the batch leaves "sending", reload the page once
// (its orders table and state then show the outcome), waiting until the user is not typing.
// Signed out (the request is redirected to the login page), or the batch no longer ours to
// see: stop asking, and reload once so the page says so.
"use strict";
(function () {
  var bar = document.getElementById("batch-progress");
  var url = bar && bar.getAttribute("data-progress-url");
  if (!url) { return; }
  var PERIOD = 3000;
  var failures = 0;

  function typing() {
    var active = document.activeElement;
    return Boolean(active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName));
  }

  function setText(selector, text) {
    var element = bar.querySelector(selector);
    if (!element) { return; }
    element.textContent = text || "";
    element.hidden = !text;
  }

  function draw(data) {
    bar.setAttribute("data-finished-percent", String(data.finished_percent));
    bar.setAttribute("data-state", data.state);
    bar.setAttribute("aria-valuenow", String(data.finished_percent));
    bar.setAttribute("aria-valuetext", data.summary + ": " + data.counts_text);
    data.segments.forEach(function (segment) {
      var rect = bar.querySelector('rect[data-segment="' + segment.key + '"]');
      if (rect) {
        rect.setAttribute("x", segment.offset + "%");
        rect.setAttribute("width", segment.percent + "%");
      }
      var count = bar.querySelector('[data-count="' + segment.key + '"]');
      if (count) { count.textContent = String(segment.count); }
    });
    setText('[data-progress="summary"]', data.summary);
    setText('[data-progress="eta"]', data.eta_text);
    setText('[data-progress="note"]', data.note);
  }

  function reloadWhenIdle() {
    if (!typing()) { window.location.reload(); return; }
    document.addEventListener("focusout", function () { window.setTimeout(reloadWhenIdle, 200); }, { once: true });
  }

  // Reload once: a page that loads again and still cannot be followed is left as it is.
  var GONE = "giftdesk-follow-gone:" + url;
  function gone() {
    try {
      if (window.sessionStorage.getItem(GONE)) { return; }
      window.sessionStorage.setItem(GONE, "1");
    } catch (error) { return; }  // no storage: no way to know it reloaded already
    reloadWhenIdle();
  }

  function ask() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.redirected || response.status === 403 || response.status === 404) { throw new Error("gone"); }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        if (type.indexOf("application/json") !== 0) { throw new Error("gone"); }  // a login page, not our answer
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        try { window.sessionStorage.removeItem(GONE); } catch (error) { /* no storage */ }
        draw(data);
        if (data.state === "sending") { window.setTimeout(ask, PERIOD); } else { reloadWhenIdle(); }
      })
      .catch(function (error) {
        if (error.message === "gone") { gone(); return; }  // no more asking: the reloaded page says why
        failures += 1;  // a restart of the server: ask again, less often
        window.setTimeout(ask, PERIOD * Math.min(failures + 1, 10));
      });
  }

  window.setTimeout(ask, PERIOD);
}());
