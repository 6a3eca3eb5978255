// Session page: live figures over server-sent events. The server words everything (the
// frame's `view`); this script copies texts by element id and shows or hides sections.
// Without it the page is complete as of its loading.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.dataset.events;
  if (!url || !window.EventSource) return;
  var elapsed = document.getElementById("elapsed");

  // Same format as strom.web.page_views.hms.
  function hms(seconds) {
    var s = Math.max(Math.floor(seconds), 0);
    var m = Math.floor(s / 60) % 60;
    return Math.floor(s / 3600) + ":" + (m < 10 ? "0" : "") + m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
  }
  function tick() {
    if (!elapsed || !elapsed.dataset.running || !elapsed.dataset.started) return;
    elapsed.textContent = hms((Date.now() - Date.parse(elapsed.dataset.started)) / 1000);
  }
  setInterval(tick, 1000);

  new EventSource(url).addEventListener("session", function (e) {
    var s = JSON.parse(e.data);
    var view = s.view;
    Object.keys(view.texts).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.textContent !== view.texts[id]) el.textContent = view.texts[id];
    });
    Object.keys(view.shown).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.hidden = !view.shown[id];
    });
    Object.keys(view.bars).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.max = view.bars[id][1]; el.value = view.bars[id][0]; }
    });
    var state = document.getElementById("state");
    if (state) state.className = "status status-" + view.state;
    if (elapsed) {
      elapsed.dataset.started = s.started_at || "";
      elapsed.dataset.running = view.state === "charging" ? "yes" : "";
    }
  });
})();
