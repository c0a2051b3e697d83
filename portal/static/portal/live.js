// Keeps a run or deployment page current while it is in progress: every 2 s it fetches the page's fragment
// (the element with data-live-url) until the fragment says it has finished. No library needed; without JavaScript the page
// reloads itself instead (a <noscript> refresh).
//
// For keyboard and screen reader users: only the parts of the fragment (data-live-part) whose markup changed
// are replaced (a fragment without parts is replaced whole), so a control in an unchanged part (Abort) keeps the focus; in a replaced part the focus goes
// back to the control at the same place, and opened stage logs stay open. The status region (data-live-announcer,
// role="status", outside the fragment) says the fragment's data-announce when it changes: the run's status and
// current stage, or the deployment's status, not every tick.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var RETRY_MS = 5000;
  var MAX_FAILURES = 5;
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  var container = document.querySelector("[data-live-url]");
  if (!container || !window.fetch) return;
  var announcer = document.querySelector("[data-live-announcer]");
  var url = container.getAttribute("data-live-url");
  var failures = 0;
  var received = {};  // each part's markup as last received: an unchanged part is left alone
  container.querySelectorAll("[data-live-part]").forEach(function (part) {
    received[part.getAttribute("data-live-part")] = unmasked(part.innerHTML);
  });
  var announced = root(container) && root(container).getAttribute("data-announce");  // known at load

  // Django masks the CSRF token anew in every answer (the same secret, so any of them is valid): a part whose
  // only change is the mask has not changed.
  function unmasked(html) {
    return html.replace(/(name="csrfmiddlewaretoken" value=")[^"]*"/g, '$1"');
  }

  function root(element) {
    return element.querySelector("[data-finished]");
  }

  function finished() {
    var current = root(container);
    return !current || current.getAttribute("data-finished") === "true";
  }

  function replacePart(current, fresh) {
    var open = [];
    current.querySelectorAll("details").forEach(function (el, i) { if (el.open) open.push(i); });
    var focusables = Array.prototype.slice.call(current.querySelectorAll(FOCUSABLE));
    var focused = focusables.indexOf(document.activeElement);
    var wanted = focused < 0 ? null : identity(document.activeElement);
    current.innerHTML = fresh.innerHTML;
    var details = current.querySelectorAll("details");
    open.forEach(function (i) { if (details[i]) details[i].open = true; });
    if (focused < 0) return;
    // The same control again (or the one at the same place), or the main content when it is gone.
    var candidates = Array.prototype.slice.call(current.querySelectorAll(FOCUSABLE));
    var target = candidates.filter(function (el) { return identity(el) === wanted; })[0]
      || candidates[focused] || document.getElementById("main");
    if (target) target.focus({ preventScroll: true });
  }

  function identity(element) {
    return [element.tagName, element.getAttribute("href"), element.getAttribute("name"),
      element.textContent.trim()].join("|");
  }

  function swap(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = root(template.content);
    var current = root(container);
    if (!fresh || !current) {  // not a fragment this script knows: show it as it is
      container.innerHTML = html;
      return;
    }
    current.setAttribute("data-finished", fresh.getAttribute("data-finished"));
    var parts = fresh.querySelectorAll("[data-live-part]");
    if (!parts.length) replacePart(current, fresh);
    parts.forEach(function (part) {
      var name = part.getAttribute("data-live-part");
      var target = current.querySelector('[data-live-part="' + name + '"]');
      var markup = unmasked(part.innerHTML);
      if (!target || received[name] === markup) return;
      received[name] = markup;
      replacePart(target, part);
    });
    var text = fresh.getAttribute("data-announce");
    current.setAttribute("data-announce", text);
    if (announcer && text && text !== announced) {
      announced = text;
      announcer.textContent = text;
    }
    container.dispatchEvent(new CustomEvent("live:updated"));  // for whoever needs to know (the tests do)
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
