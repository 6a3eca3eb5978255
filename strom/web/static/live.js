// Charger page: live status over server-sent events. The page is complete without this script.
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
    setStatus(document.getElementById("cp-status"), cp.status);
    cp.connectors.forEach(function (c) {
      setStatus(document.querySelector('[data-connector="' + c.id + '"]'), c.status);
    });
    var words = document.getElementById("availability");
    if (words && words.textContent !== cp.availability) words.textContent = cp.availability;
  });
})();
