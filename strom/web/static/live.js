// Live updates over server-sent events; the page works without this script.
(function () {
  var script = document.currentScript;
  var url = script && script.dataset.events;
  if (!url || !window.EventSource) return;
  var source = new EventSource(url);
  function set(id, text) { var el = document.getElementById(id); if (el) el.textContent = text; }
  function setStatus(el, status) {
    el.textContent = status;
    el.className = "status status-" + status.toLowerCase();
  }
  source.addEventListener("charge_point", function (e) {
    var cp = JSON.parse(e.data);
    var whole = document.getElementById("cp-status");
    if (whole) setStatus(whole, cp.status);
    cp.connectors.forEach(function (c) {
      var el = document.querySelector('[data-connector="' + c.id + '"]');
      if (el) setStatus(el, c.status);
    });
  });
  source.addEventListener("session", function (e) {
    var s = JSON.parse(e.data);
    var state = document.getElementById("state");
    if (state && !state.classList.contains("status-" + s.state)) {
      location.reload();  // another state shows other sections (refund, receipt)
      return;
    }
    set("energy", (s.energy_wh / 1000).toFixed(2));
    set("power", ((s.power_w || 0) / 1000).toFixed(1));
    set("soc", s.soc_percent == null ? "–" : Math.round(s.soc_percent));
    set("paid", Math.floor(s.paid_msat / 1000));
    set("consumed", Math.floor(s.consumed_msat / 1000));
    set("refundable", Math.floor(s.refundable_msat / 1000));
    set("refunded", Math.floor(s.refunded_msat / 1000));
  });
})();
