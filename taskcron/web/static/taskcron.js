// taskcron dashboard: live updates through Server-Sent Events (no polling).
//
// Each `task` event updates the rows and panels of that task (state, progress,
// elapsed time) and dispatches on `document`:
//   taskcron:state     when a task's state changed     (detail: the task's JSON)
//   taskcron:progress  when a task's progress changed  (detail: the task's JSON)
// and each `log` event appends to the log page and dispatches
//   taskcron:log                                        (detail: the log record)
// A script named by web.script can listen for these and restyle what it likes.
(function () {
  "use strict";

  var seen = {}; // task id -> {state, progress}

  function dispatch(name, detail) {
    document.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  // Text from tasks with its control characters as escapes (\x1b, \r, \u202e), as the
  // server's pages show it (routes.shown); line breaks and tabs kept.
  function shown(value) {
    return String(value).replace(/[\p{C}\p{Z}]/gu, function (c) {
      if (c === " " || c === "\n" || c === "\t") { return c; }
      if (c === "\r") { return "\\r"; }
      var code = c.codePointAt(0), hex = code.toString(16);
      if (code < 0x100) { return "\\x" + ("0" + hex).slice(-2); }
      if (code < 0x10000) { return "\\u" + ("000" + hex).slice(-4); }
      return "\\U" + ("0000000" + hex).slice(-8);
    });
  }

  function text(tag, value) {
    var cell = document.createElement(tag);
    cell.textContent = value == null ? "" : shown(value);
    return cell;
  }

  function seconds(value) {
    if (value < 60) { return value.toFixed(1) + "s"; }
    var whole = Math.round(value), out = "";
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].forEach(function (unit) {
      if (whole >= unit[1]) { out += Math.floor(whole / unit[1]) + unit[0]; whole %= unit[1]; }
    });
    return out;
  }

  function progressText(progress) {
    if (!progress) { return ""; }
    var done = progress.percent != null ? progress.percent + "%" : String(progress.done);
    return progress.message ? done + " · " + shown(progress.message) : done;
  }

  function paint(root, task) {
    root.setAttribute("data-state", task.state);
    root.querySelectorAll("[data-field=state]").forEach(function (el) {
      el.textContent = task.state;
      el.setAttribute("data-value", task.state);
    });
    root.querySelectorAll("progress[data-field=progress]").forEach(function (bar) {
      if (!task.progress) { return; }
      bar.hidden = false;
      if (task.progress.percent != null) {
        bar.value = task.progress.percent;
      } else {
        bar.removeAttribute("value");
      }
    });
    root.querySelectorAll("[data-field=progress-text]").forEach(function (el) {
      if (task.progress) { el.textContent = progressText(task.progress); }
    });
    root.querySelectorAll("[data-field=host]").forEach(function (el) {
      if (task.run) { el.textContent = shown(task.run.host); }
    });
  }

  function runningRow(task) {
    var row = document.createElement("tr");
    row.setAttribute("data-task-id", String(task.id));
    var link = function (value) {
      var cell = document.createElement("td"), a = document.createElement("a");
      a.href = "/tasks/" + encodeURIComponent(task.id);
      a.textContent = shown(value);
      cell.appendChild(a);
      return cell;
    };
    var state = document.createElement("span");
    state.className = "state";
    state.setAttribute("data-field", "state");
    var stateCell = document.createElement("td");
    stateCell.appendChild(state);
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.setAttribute("data-field", "progress");
    bar.hidden = true;
    var label = document.createElement("span");
    label.className = "progress-text";
    label.setAttribute("data-field", "progress-text");
    var progressCell = document.createElement("td");
    progressCell.appendChild(bar);
    progressCell.appendChild(label);
    var elapsed = text("td", "");
    elapsed.className = "time";
    elapsed.setAttribute("data-field", "elapsed");
    if (task.run) { elapsed.setAttribute("data-started", task.run.started_at); }
    var module = text("td", task.module);
    module.className = "module";
    var title = link(task.title);
    title.className = "title";
    var host = text("td", task.run ? task.run.host : "");
    host.setAttribute("data-field", "host");
    [link(task.id), module, title, stateCell, progressCell, elapsed, host].forEach(function (c) {
      row.appendChild(c);
    });
    row.className = "fresh";
    return row;
  }

  function onTask(task) {
    var before = seen[task.id];
    var roots = document.querySelectorAll('[data-task-id="' + String(task.id) + '"]');
    var running = document.querySelector("[data-live=running]");
    if (running && task.state === "running" && !running.querySelector('[data-task-id="' + task.id + '"]')) {
      var empty = running.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      running.appendChild(runningRow(task));
      roots = document.querySelectorAll('[data-task-id="' + String(task.id) + '"]');
    }
    var oldState = before ? before.state : (roots[0] ? roots[0].getAttribute("data-state") : null);
    roots.forEach(function (root) { paint(root, task); });
    var progress = JSON.stringify(task.progress);
    seen[task.id] = { state: task.state, progress: progress };
    if (oldState !== task.state) { dispatch("taskcron:state", task); }
    if (task.progress && (!before || before.progress !== progress)) { dispatch("taskcron:progress", task); }
  }

  function onLog(record) {
    var body = document.querySelector("[data-live=log]");
    if (body) {
      var row = document.createElement("tr");
      row.setAttribute("data-level", record.level || "");
      var time = text("td", record.ts), level = text("td", record.level);
      time.className = "time";
      level.className = "level";
      var task = document.createElement("td");
      if (record.task != null) {
        var a = document.createElement("a");
        a.href = "/tasks/" + encodeURIComponent(record.task);
        a.textContent = String(record.task);
        task.appendChild(a);
      }
      var module = text("td", record.module || "");
      module.className = "module";
      var message = text("td", record.message || "");
      message.className = "message";
      [time, level, text("td", record.event), task, module, message].forEach(function (c) {
        row.appendChild(c);
      });
      row.className = "fresh";
      body.appendChild(row);
    }
    dispatch("taskcron:log", record);
  }

  function tickElapsed() {
    var now = Date.now();
    document.querySelectorAll("[data-field=elapsed][data-started]").forEach(function (el) {
      var row = el.closest("[data-task-id]");
      if (row && row.getAttribute("data-state") !== "running") { return; }
      var started = Date.parse(el.getAttribute("data-started"));
      if (!isNaN(started)) { el.textContent = seconds(Math.max(0, (now - started) / 1000)); }
    });
  }

  function start() {
    var url = document.body.getAttribute("data-events");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    var badge = document.querySelector("[data-live-status]");
    source.addEventListener("open", function () { if (badge) { badge.hidden = false; } });
    source.addEventListener("error", function () { if (badge) { badge.hidden = true; } });
    source.addEventListener("task", function (event) { onTask(JSON.parse(event.data)); });
    source.addEventListener("log", function (event) { onLog(JSON.parse(event.data)); });
    tickElapsed();
    window.setInterval(tickElapsed, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
