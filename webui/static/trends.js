// The interactive trend chart (uPlot, vendored; the data is in the page): several series on one time axis in the
// site's time zone, one y axis per unit (on/off states on their own 0-1 axis), values under
// the pointer in the legend, drag to zoom, double-click to zoom out, PNG export.
(function () {
  "use strict";
  var box = document.getElementById("trend-chart");
  if (!box || typeof uPlot === "undefined") { return; }
  var COLOURS = ["#1f4e79", "#c55a11", "#548235", "#7030a0"];
  var STATES = {status: 1, occupancy: 1, lighting: 1, outdoor_air: 1};
  var UNITS = {degC: "°C", degc: "°C", percent: "%"};

  function aligned(series) {
    var times = {};
    series.forEach(function (s) { s.t.forEach(function (t) { times[t] = 1; }); });
    var xs = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    xs.forEach(function (t, i) { index[t] = i; });
    var data = [xs];
    series.forEach(function (s) {
      var ys = new Array(xs.length).fill(null);
      s.t.forEach(function (t, i) { ys[index[t]] = s.v[i]; });
      data.push(ys);
    });
    return data;
  }

  function draw(doc) {
    if (!doc.series.length) { box.textContent = "–"; return; }
    doc.series.forEach(function (s) { s.unit = UNITS[s.unit] || s.unit; });
    var units = [];
    doc.series.forEach(function (s) {
      var u = STATES[s.kind] ? "state" : (s.unit || "value");
      s.scale = u;
      if (units.indexOf(u) < 0) { units.push(u); }
    });
    var lang = document.documentElement.lang || "vi";
    var fmtTime = new Intl.DateTimeFormat(lang, {timeZone: doc.tz, hour: "2-digit",
                                                 minute: "2-digit", hourCycle: "h23"});
    var fmtDay = new Intl.DateTimeFormat(lang, {timeZone: doc.tz, day: "2-digit", month: "2-digit"});
    function when(ts) { var d = new Date(ts * 1e3); return fmtDay.format(d) + " " + fmtTime.format(d); }
    var colour = {}, next = 0;
    var series = [{label: box.getAttribute("data-time-label") || "", value: function (u, ts) { return ts == null ? "–" : when(ts); }}].concat(doc.series.map(function (s) {
      if (!(s.id in colour)) { colour[s.id] = COLOURS[next++ % COLOURS.length]; }
      return {label: s.label + (s.unit ? " (" + s.unit + ")" : ""), scale: s.scale,
              stroke: colour[s.id], width: s.previous ? 1 : 2, dash: s.previous ? [6, 4] : undefined,
              spanGaps: false, paths: STATES[s.kind] ? uPlot.paths.stepped({align: 1}) : undefined,
              value: function (u, v) { return v == null ? "–" : v.toLocaleString(document.documentElement.lang, {maximumFractionDigits: 1}); }};
    }));
    var scales = {x: {time: true}};
    var axes = [{values: function (u, splits) {  // 24-hour times in the site's zone, the day when it changes
      var last = "";
      return splits.map(function (ts) {
        var d = new Date(ts * 1e3), day = fmtDay.format(d), t = fmtTime.format(d);
        var label = day !== last ? t + "\n" + day : t;
        last = day;
        return label;
      });
    }}];
    units.forEach(function (u, i) {
      scales[u] = u === "state" ? {range: [-0.1, 1.1]} : {auto: true};
      if (i < 2) { axes.push({scale: u, side: i === 0 ? 3 : 1, label: u === "state" ? "" : u,
                              grid: {show: i === 0}}); }
    });
    var opts = {
      width: Math.max(320, box.clientWidth || 800), height: 320, series: series, scales: scales,
      axes: axes, cursor: {drag: {x: true, y: false}},
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), doc.tz); }
    };
    box.textContent = "";
    var plot = new uPlot(opts, aligned(doc.series), box);
    box.setAttribute("data-ready", String(doc.series.length));
    window.addEventListener("resize", function () {
      plot.setSize({width: Math.max(320, box.clientWidth), height: 320});
    });
    // pan: move the visible window by half its width
    [["pan-left", -0.5], ["pan-right", 0.5]].forEach(function (b) {
      var btn = document.getElementById(b[0]);
      if (!btn) { return; }
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var min = plot.scales.x.min, max = plot.scales.x.max, d = (max - min) * b[1];
        plot.setScale("x", {min: min + d, max: max + d});
        box.setAttribute("data-window", Math.round(min + d) + "-" + Math.round(max + d));
      });
    });
    var png = document.getElementById("png");
    if (png) {
      png.hidden = false;
      png.addEventListener("click", function () {
        var a = document.createElement("a");
        a.href = plot.ctx.canvas.toDataURL("image/png");
        a.download = "trend.png";
        document.body.appendChild(a); a.click(); a.remove();
      });
    }
  }

  // the data comes in the page (a JSON block, not a script: the CSP allows it)
  var block = document.getElementById("trend-data");
  try { draw(JSON.parse(block.textContent)); } catch (e) { box.textContent = "–"; }
}());
