// steep dashboard: relative times, confirmations, charts. No dependencies but
// htmx (polling) and uPlot (charts), both vendored.
(function () {
  "use strict";

  function relative(date) {
    var delta = (date.getTime() - Date.now()) / 1000, s = Math.abs(delta), text;
    if (s < 45) text = Math.round(s) + " s";
    else if (s < 5400) text = Math.round(s / 60) + " min";
    else if (s < 129600) text = Math.round(s / 3600) + " h";
    else text = Math.round(s / 86400) + " d";
    return delta > 0 ? "in " + text : text + " ago";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = relative(d);
      el.title = d.toLocaleString();  // absolute, in the reader's zone, on hover
    });
  }

  // confirmations for destructive actions (forms or single buttons)
  document.addEventListener("submit", function (e) {
    var button = e.submitter, form = e.target;
    var message = (button && button.dataset.confirm) || form.dataset.confirm;
    if (message && !window.confirm(message)) { e.preventDefault(); return; }
    if (button && button.classList.contains("js-all")) {
      var op = document.createElement("input");
      op.type = "hidden"; op.name = "op"; op.value = button.dataset.op;
      form.appendChild(op);
    }
    var tz = form.querySelector(".js-tz");
    if (tz) tz.value = String(new Date().getTimezoneOffset());
  }, true);

  document.addEventListener("change", function (e) {
    if (!e.target.classList.contains("js-check-all")) return;
    var table = e.target.closest("table");
    table.querySelectorAll('tbody input[type=checkbox]').forEach(function (box) {
      box.checked = e.target.checked;
    });
  });

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chart(el, stamps, series, labels, colours, bars) {
    el.innerHTML = "";
    var width = Math.max(el.clientWidth, 200);
    var opts = {
      width: width, height: 220,
      axes: [
        { stroke: css("--muted"), grid: { stroke: css("--line") } },
        { stroke: css("--muted"), grid: { stroke: css("--line") } },
      ],
      series: [{}].concat(labels.map(function (label, i) {
        var s = { label: label, stroke: colours[i], width: 2, fill: colours[i] + "22", points: { show: false } };
        if (bars) s.paths = uPlot.paths.bars({ size: [0.6, 40] });
        return s;
      })),
      cursor: { drag: { x: false, y: false } },
    };
    return new uPlot(opts, [stamps].concat(series), el);
  }

  function liveChart(el) {
    var draw = function () {
      fetch(el.dataset.src, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          chart(el, d.t, [d.processed, d.failed], ["processed", "failed"],
                [css("--good"), css("--bad")]);
        })
        .catch(function () {});
    };
    draw();
    setInterval(draw, parseInt(el.dataset.live, 10) || 5000);
  }

  function daysChart(el) {
    var days = JSON.parse(el.dataset.days);
    var t = days.map(function (d) { return Date.parse(d.day + "T00:00:00Z") / 1000; });
    chart(el, t, [days.map(function (d) { return d.processed; }),
                  days.map(function (d) { return d.failed; })],
          ["processed", "failed"], [css("--good"), css("--bad")], true);
  }

  function spark(el) {
    var s = JSON.parse(el.dataset.series);
    new uPlot({
      width: 160, height: 32, legend: { show: false }, cursor: { show: false },
      axes: [{ show: false }, { show: false }], scales: { x: { time: false } },
      series: [{}, { stroke: css("--accent"), fill: css("--accent") + "33", width: 1.5 },
               { stroke: css("--bad"), width: 1 }],
    }, [s.map(function (r, i) { return i; }), s.map(function (r) { return r[1]; }),
        s.map(function (r) { return r[2]; })], el);
  }

  // a step's log, streamed: the lines after the last cursor, appended as text (never
  // parsed as HTML), until the step has finished and every line is shown
  function followLog(pre) {
    var cursor = "0-0";
    function tick() {
      fetch(pre.dataset.logSrc + "&after=" + encodeURIComponent(cursor), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.trimmed) pre.appendChild(document.createTextNode("[older lines trimmed: the log file on the build machine has them all]\n"));
          if (data.lines && data.lines.length) {
            var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.appendChild(document.createTextNode(data.lines.join("\n") + "\n"));
            if (atEnd) pre.scrollTop = pre.scrollHeight;
          }
          cursor = data.cursor || cursor;
          if (data.done) pre.dataset.done = "true";
          else setTimeout(tick, data.lines && data.lines.length >= 2000 ? 0 : 500);
        })
        .catch(function () { setTimeout(tick, 2000); });
    }
    tick();
  }

  function start() {
    document.querySelectorAll("pre[data-log-src]").forEach(followLog);
    refreshTimes();
    setInterval(refreshTimes, 15000);
    document.body.addEventListener("htmx:afterSwap", function (e) { refreshTimes(e.target); });
    // a run page opened while the run was being prepared: show its steps' logs once
    // they are known
    document.body.addEventListener("htmx:afterSettle", function () {
      var steps = document.querySelectorAll("#run-steps tr[data-step]").length;
      var shown = document.querySelectorAll("details.steplog").length;
      if (document.getElementById("run-steps") && steps > shown) window.location.reload();
    });
    if (typeof uPlot === "undefined") return;
    var live = document.getElementById("live-chart");
    if (live) liveChart(live);
    var days = document.getElementById("days-chart");
    if (days) daysChart(days);
    document.querySelectorAll(".spark").forEach(spark);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
