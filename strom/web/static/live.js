// Charger page and list: live status over server-sent events. The pages are complete without it.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.dataset.events;
  if (!url || !window.EventSource) return;
  function setStatus(el, status) {
    if (!el || el.textContent === status) return;
    el.textContent = status;
    el.className = "status status-" + status.toLowerCase();
  }
  new EventSource(url).addEventListener("charge_point", function (e) {
    var cp = JSON.parse(e.data);
    // On its own page the charger's badge is #cp-status; in the list, [data-cp="id"].
    setStatus(document.getElementById("cp-status") ||
              document.querySelector('[data-cp="' + cp.id + '"]'), cp.status);
    cp.connectors.forEach(function (c) {
      setStatus(document.querySelector('[data-connector="' + c.id + '"]'), c.status);
    });
    var words = document.getElementById("availability");
    if (words && words.textContent !== cp.availability) words.textContent = cp.availability;
  });
})();
