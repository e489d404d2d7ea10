// Buttons with data-copy="<input id>" copy that input's value to the clipboard.
(function () {
  "use strict";
  function copy(input, button) {
    var label = button.textContent;
    function done(text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = label; }, 1600);
    }
    function fallback() {
      input.classList.remove("offscreen");
      input.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok ? "Copied" : "Press Ctrl+C");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { done("Copied"); }, fallback);
    } else {
      fallback();
    }
  }
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      copy(document.getElementById(button.getAttribute("data-copy")), button);
    });
  });
})();
