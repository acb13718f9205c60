// Follow a send without pressing a key: reload every 5 seconds, unless the user is typing.
"use strict";
setInterval(function () {
  var active = document.activeElement;
  if (!active || !/^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { window.location.reload(); }
}, 5000);
