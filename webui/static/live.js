// Live values: every element with data-live="kw_now" or data-live="zone:ID:FIELD" is updated
// from /live/now.json every 10 s while the page is visible. No framework, no inline script
// (the CSP allows scripts from this server only).
(function () {
  "use strict";
  var nodes = document.querySelectorAll("[data-live]");
  if (!nodes.length) { return; }
  var every = 10000;
  function apply(doc) {
    nodes.forEach(function (n) {
      var key = n.getAttribute("data-live").split(":"), v;
      if (key[0] === "kw_now") { v = doc.kw_now; }
      else if (key[0] === "zone" && doc.zones[key[1]]) {
        var z = doc.zones[key[1]];
        v = z[key[2]];
        var row = n.closest("tr");
        if (row) { row.classList.toggle("warn", !!z.out_of_band); }
      }
      if (v !== undefined && v !== null && typeof v !== "object") {
        var unit = n.getAttribute("data-unit") || "";
        n.textContent = v + (unit ? " " + unit : "");
      }
    });
    var stamp = document.getElementById("live-time");
    if (stamp) { stamp.textContent = doc.clock; stamp.setAttribute("data-updated", doc.time); }
  }
  function tick() {
    if (document.hidden) { return; }
    fetch("/live/now.json", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) { if (doc) { apply(doc); } })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }
  setInterval(tick, every);
  document.addEventListener("visibilitychange", tick);
}());
