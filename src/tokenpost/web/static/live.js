// Progressive enhancement only: every page works without this script. It keeps the state
// labels, reasons and expiry countdowns of the status table current, without reloading.
"use strict";
(function () {
  function minutesLeft(iso) {
    var ms = Date.parse(iso) - Date.now();
    return ms > 0 ? Math.ceil(ms / 60000) : null;
  }

  function renderExpiry(cell, iso) {
    var countdown = cell.querySelector(".countdown");
    var time = cell.querySelector("time");
    if (!iso) {
      cell.textContent = "";
      return;
    }
    if (!time) {
      time = document.createElement("time");
      cell.appendChild(time);
    }
    if (time.getAttribute("datetime") !== iso) {
      time.setAttribute("datetime", iso);
      time.textContent = iso.replace("T", " ").replace(/:\d\dZ$/, " UTC");
    }
    if (!countdown) {
      countdown = document.createElement("small");
      countdown.className = "countdown";
      cell.appendChild(countdown);
    }
    var left = minutesLeft(iso);
    countdown.textContent = left === null
      ? cell.getAttribute("data-expired")
      : cell.getAttribute("data-left").replace("{minutes}", String(left));
  }

  function tick() {
    document.querySelectorAll("[data-live='expiry']").forEach(function (cell) {
      var time = cell.querySelector("time");
      if (time) renderExpiry(cell, time.getAttribute("datetime"));
    });
  }

  function apply(data) {
    (data.settings || []).forEach(function (s) {
      document.querySelectorAll("tr[data-setting]").forEach(function (row) {
        if (row.getAttribute("data-setting") !== s.id) return;
        var label = row.querySelector("[data-live='label']");
        if (label && s.label) {
          label.textContent = s.label;
          label.className = "label state-" + s.state;
        }
        var reason = row.querySelector("[data-live='reason']");
        if (reason) reason.textContent = s.reason || "";
        var expiry = row.querySelector("[data-live='expiry']");
        if (expiry) renderExpiry(expiry, s.expires_at);
      });
    });
  }

  function poll(url) {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("[data-live-status]");
    if (table) {
      var url = table.getAttribute("data-live-status");
      setInterval(function () { poll(url); }, 5000);
    }
    setInterval(tick, 15000);
  });
})();
