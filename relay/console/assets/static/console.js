// edgerelay console: refreshes the overview in place, "select all", and
// confirmation of destructive buttons. The pages work without it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (live) {
    var every = (parseInt(live.getAttribute("data-refresh"), 10) || 5) * 1000;
    var tick = function () {
      fetch(location.pathname + "?fragment=1", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { location.href = "/ui/login"; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) { if (html !== null) { live.innerHTML = html; } })
        .catch(function () { /* next tick */ })
        .finally(function () { setTimeout(tick, every); });
    };
    setTimeout(tick, every);
  }
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (c) { c.checked = all.checked; });
    });
  }
  document.querySelectorAll("button[data-confirm]").forEach(function (b) {
    b.addEventListener("click", function (e) {
      if (!window.confirm(b.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
})();
