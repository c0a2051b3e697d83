// Keeps a run or deployment page current while it is in progress: every 2 s it fetches the page's fragment
// (the element with data-live-url) and swaps it in, until the fragment says it has finished. No library needed;
// without JavaScript the page reloads itself instead (a <noscript> refresh).
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var RETRY_MS = 5000;
  var MAX_FAILURES = 5;
  var container = document.querySelector("[data-live-url]");
  if (!container || !window.fetch) return;
  var url = container.getAttribute("data-live-url");
  var failures = 0;

  function finished() {
    var root = container.querySelector("[data-finished]");
    return !root || root.getAttribute("data-finished") === "true";
  }

  function openDetails() {
    var open = [];
    container.querySelectorAll("details").forEach(function (el, i) { if (el.open) open.push(i); });
    return open;
  }

  function swap(html) {
    var open = openDetails();  // keep the stage logs a reader opened
    container.innerHTML = html;
    var details = container.querySelectorAll("details");
    open.forEach(function (i) { if (details[i]) details[i].open = true; });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        // Signed out (redirect to the login page) or refused: stop, a reload says why.
        if (response.redirected || !response.ok) throw new Error("stop");
        return response.text();
      })
      .then(function (html) {
        failures = 0;
        swap(html);
        if (!finished()) window.setTimeout(poll, INTERVAL_MS);
      })
      .catch(function (error) {
        // A network hiccup: try again a little later, a few times.
        if (error.message !== "stop" && ++failures < MAX_FAILURES) window.setTimeout(poll, RETRY_MS);
      });
  }

  if (!finished()) window.setTimeout(poll, INTERVAL_MS);
})();
