// taskcron dashboard: live updates through Server-Sent Events (no polling).
//
// Each `task` event updates the rows and panels of that task (state, progress,
// elapsed times: `step` the current run's, `job` since the job's first step started;
// a task that stopped running leaves the Running panel), each `counts` event redraws
// the counts by module id and state, and each `task` event dispatches on `document`:
//   taskcron:state     when a task's state changed     (detail: the task's JSON)
//   taskcron:progress  when a task's progress changed  (detail: the task's JSON)
// and each `log` event appends to the log page and dispatches
//   taskcron:log                                        (detail: the log record)
// and each `counts` event, once drawn, dispatches
//   taskcron:counts                                     (detail: {modules: ...})
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
    root.querySelectorAll("[data-field=step-elapsed]").forEach(function (el) {
      setElapsed(el, task.step_elapsed);
    });
    root.querySelectorAll("[data-field=job-elapsed]").forEach(function (el) {
      setElapsed(el, task.job_elapsed);
    });
  }

  // An elapsed time counts on from the page's own clock: `data-since` is when, by this
  // browser's clock, the server's `value` was zero.
  function setElapsed(el, value) {
    if (value == null || isNaN(value)) { return; }
    el.setAttribute("data-since", String(Date.now() - value * 1000));
    el.textContent = seconds(value);
  }

  function elapsedCell(field, value) {
    var cell = text("td", "");
    cell.className = "time";
    cell.setAttribute("data-field", field);
    setElapsed(cell, value);
    return cell;
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
    var step = elapsedCell("step-elapsed", task.step_elapsed);
    var job = elapsedCell("job-elapsed", task.job_elapsed);
    var module = text("td", task.module);
    module.className = "module";
    var title = link(task.title);
    title.className = "title";
    var host = text("td", task.run ? task.run.host : "");
    host.setAttribute("data-field", "host");
    [link(task.id), module, title, stateCell, progressCell, step, job, host].forEach(function (c) {
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
    if (running && task.state !== "running") { leaveRunning(running, task.id); }
    var progress = JSON.stringify(task.progress);
    seen[task.id] = { state: task.state, progress: progress };
    if (oldState !== task.state) { dispatch("taskcron:state", task); }
    if (task.progress && (!before || before.progress !== progress)) { dispatch("taskcron:progress", task); }
  }

  // A task that stopped running leaves the Running panel; an empty panel says so.
  function leaveRunning(running, id) {
    var row = running.querySelector('[data-task-id="' + String(id) + '"]');
    if (!row) { return; }
    row.remove();
    if (!running.querySelector("tr[data-task-id]")) {
      var empty = document.createElement("tr"), cell = text("td", "Nothing is running.");
      empty.className = "empty";
      cell.colSpan = running.closest("table").querySelectorAll("thead th").length;
      empty.appendChild(cell);
      running.appendChild(empty);
    }
  }

  function countsRow(module, counts, states) {
    var row = document.createElement("tr"), first = document.createElement("td");
    var link = function (state, value) {
      var a = document.createElement("a");
      a.href = "/tasks?" + new URLSearchParams({ module: module, state: state }).toString();
      a.textContent = shown(value);
      return a;
    };
    first.className = "module";
    first.appendChild(link("all", module));
    row.appendChild(first);
    states.forEach(function (state) {
      var cell = document.createElement("td");
      cell.className = "count";
      if (counts[state]) { cell.appendChild(link(state, counts[state])); }
      row.appendChild(cell);
    });
    return row;
  }

  function onCounts(data) {
    var body = document.querySelector("[data-live=counts]");
    if (!body) { return; }
    var states = [];
    body.closest("table").querySelectorAll("thead th[data-state]").forEach(function (th) {
      states.push(th.getAttribute("data-state"));
    });
    var modules = Object.keys(data.modules).sort();
    while (body.firstChild) { body.removeChild(body.firstChild); }
    modules.forEach(function (module) { body.appendChild(countsRow(module, data.modules[module], states)); });
    if (!modules.length) {
      var empty = document.createElement("tr"), cell = text("td", "No tasks yet.");
      empty.className = "empty";
      cell.colSpan = states.length + 1;
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    dispatch("taskcron:counts", data);
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
    document.querySelectorAll("[data-elapsed]:not([data-since])").forEach(function (el) {
      setElapsed(el, parseFloat(el.getAttribute("data-elapsed")));
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var row = el.closest("[data-task-id]");
      if (row && row.getAttribute("data-state") !== "running") { return; }
      var since = parseFloat(el.getAttribute("data-since"));
      if (!isNaN(since)) { el.textContent = seconds(Math.max(0, (now - since) / 1000)); }
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
    source.addEventListener("counts", function (event) { onCounts(JSON.parse(event.data)); });
    tickElapsed();
    window.setInterval(tickElapsed, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
