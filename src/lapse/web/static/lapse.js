// Lapse: small progressive enhancements shared by every page. Pages work without it; nothing here is inline,
// so the Content-Security-Policy can forbid inline script entirely.
"use strict";

(function () {
  // Live "expires in" countdowns. Elements are looked up on every tick, so content swapped in later counts too.
  function until(iso) {
    let seconds = Math.floor((Date.parse(iso) - Date.now()) / 1000);
    if (!(seconds > 0)) return null;
    const days = Math.floor(seconds / 86400);
    seconds -= days * 86400;
    const hours = Math.floor(seconds / 3600);
    seconds -= hours * 3600;
    const minutes = Math.floor(seconds / 60);
    seconds -= minutes * 60;
    if (days) return "in " + days + " d " + hours + " h";
    if (hours) return "in " + hours + " h " + minutes + " min";
    if (minutes) return "in " + minutes + " min " + seconds + " s";
    return "in " + seconds + " s";
  }

  function tick() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      const text = until(el.getAttribute("datetime"));
      el.textContent = text === null ? "expired" : text;
      el.classList.toggle("is-expired", text === null);
      if (!el.dataset.localised) {
        el.title = new Date(el.getAttribute("datetime")).toLocaleString();
        el.dataset.localised = "1";
      }
    });
  }

  // Copy buttons: the Clipboard API where the page is a secure context, else select and execCommand.
  function copy(button) {
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    const done = function () {
      const label = button.textContent;
      button.textContent = "Copied";
      button.classList.add("is-done");
      setTimeout(function () {
        button.textContent = label;
        button.classList.remove("is-done");
      }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        field.select();
      });
    } else {
      field.select();
      if (document.execCommand("copy")) done();
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (button) copy(button);
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
  });
})();
