// Progressive enhancement of the onboarding page: the import's progress refreshes in place, and a
// form shows that it is working. Everything works without this file (the page reloads itself).
(function () {
  "use strict";

  var RETRY_MS = 5000;

  function followProgress(region) {
    var url = region.getAttribute("data-progress-url");
    var interval = parseInt(region.getAttribute("data-poll-ms"), 10) || 1500;
    var current = region.querySelector(".progress-body");
    if (!url || !current || current.getAttribute("data-finished") === "true") {
      return;
    }
    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            throw new Error("session ended");
          }
          if (!response.ok) {
            throw new Error("progress answered " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var next = holder.querySelector(".progress-body");
          if (!next) {
            throw new Error("no progress in the answer");
          }
          // Only a real change is swapped in, so screen readers announce news, not every poll.
          if (next.outerHTML !== current.outerHTML) {
            region.replaceChild(next, current);
            current = next;
            var title = next.getAttribute("data-title");
            if (title) {
              document.title = title.trim() + " · Billing import";
            }
          }
          if (next.getAttribute("data-finished") !== "true") {
            window.setTimeout(poll, interval);
          }
        })
        .catch(function () {
          window.setTimeout(poll, RETRY_MS);
        });
    }
    window.setTimeout(poll, interval);
  }

  function markBusy(form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      var label = form.getAttribute("data-busy-label");
      if (!button || button.getAttribute("aria-disabled") === "true") {
        return;
      }
      button.setAttribute("aria-disabled", "true");
      if (label) {
        button.textContent = label;
      }
      // A second press would submit the key twice; the first answer is on its way.
      form.addEventListener("submit", function (event) { event.preventDefault(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var region = document.getElementById("progress");
    if (region) {
      followProgress(region);
    }
    Array.prototype.forEach.call(document.querySelectorAll("form[data-busy-label]"), markBusy);
  });
})();
