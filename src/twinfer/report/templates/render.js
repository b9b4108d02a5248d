// Draw every chart whose spec sits in a <script type="application/json" class="twinfer-figure">.
// Sets data-rendered on each chart and data-charts-rendered="<n>" on <body> when all are drawn,
// so a test (or a headless browser) can wait for the page to be complete.
(function () {
  "use strict";
  var specs = document.querySelectorAll("script.twinfer-figure");
  var done = 0;
  function finish() {
    done += 1;
    if (done === specs.length) { document.body.setAttribute("data-charts-rendered", String(done)); }
  }
  if (specs.length === 0) { document.body.setAttribute("data-charts-rendered", "0"); return; }
  specs.forEach(function (el) {
    var target = document.getElementById(el.getAttribute("data-target"));
    var spec = JSON.parse(el.textContent);
    var config = {
      responsive: true, displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "toggleSpikelines",
                               "hoverClosestCartesian", "hoverCompareCartesian", "sendDataToCloud"]
    };
    Plotly.newPlot(target, spec.data, spec.layout, config).then(function () {
      target.setAttribute("data-rendered", "1");
      finish();
    });
  });
  // Numbers cite their source: show it on hover.
  document.querySelectorAll("[data-src][data-path]").forEach(function (cell) {
    cell.title = cell.getAttribute("data-src") + " " + cell.getAttribute("data-path") + " = " + cell.getAttribute("data-value");
  });
})();
