// The strategies screen: each slider shows its value beside it as it moves (the value is also
// rendered by the server, so it reads right without this script). No inline script (CSP).
(function () {
  "use strict";
  document.querySelectorAll("input[type=range][data-output]").forEach(function (input) {
    var out = document.getElementById(input.getAttribute("data-output"));
    if (!out) { return; }
    input.addEventListener("input", function () {
      out.textContent = input.value;
      input.setAttribute("aria-valuetext", input.value + " / 100");
    });
  });
})();
