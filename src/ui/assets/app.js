// Live refresh for the Hopper dashboard: every few seconds, fetch this same page and swap
// in the fresh copy of each element marked data-live (matched by id). Pages work the same
// without it; it pauses while the tab is hidden and never replaces a part being edited.
(function () {
  "use strict";
  var EVERY_MS = 4000;
  if (!document.querySelector("[data-live]") || !window.fetch || !window.DOMParser) return;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Hopper-Live": "1" } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          if (!el.id || el.contains(document.activeElement)) return;
          var next = fresh.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
        var s = document.getElementById("live-status");
        if (s) s.textContent = "Live: updated " + new Date().toLocaleTimeString();
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }
  setInterval(refresh, EVERY_MS);
})();
