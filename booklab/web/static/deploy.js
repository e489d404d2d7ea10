// The deploy page: follows the deployment's event stream (BinderHub's format), shows the
// phase progress and the log, and goes to the notebook when it becomes ready. A notebook
// that was ready already when the page was loaded (the user came back to it) is not
// opened: the page shows its link and its controls (save the changes to GitLab when it
// stops, Save now, Stop) and, the event stream being over, asks the API about it now and
// then, to show its saves and notice its end. Phase names and save states come from the
// server, never from this file.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("deploy-config").textContent);
  var P = cfg.phases;
  var S = cfg.saveStates;
  var logBox = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var steps = document.querySelectorAll(".steps li");
  var buttons = {
    open: document.getElementById("open"),
    retry: document.getElementById("retry"),
    stop: document.getElementById("stop"),
    saveNow: document.getElementById("save-now"),
    discard: document.getElementById("discard")
  };
  var saving = {
    box: document.getElementById("save-box"),
    choice: document.getElementById("save-choice"),
    checkbox: document.getElementById("save-back"),
    line: document.getElementById("save-status"),
    actions: document.getElementById("save-actions")
  };
  var source = null;
  var lastEventId = 0;
  var MAX_LOG_CHARS = 2000000;
  // milliseconds between two looks at a ready notebook: while a save or a stop is under
  // way, and otherwise
  var FAST_POLL = 2000;
  var SLOW_POLL = 10000;
  // a stop asked while the last save had failed: a failure seen this long after it is the
  // stop's own save failing, even if the page never saw that save running
  var STALE_FAILURE_MS = 30000;
  var KEPT_RUNNING = "Your notebook keeps running: your changes could not be saved.";
  // how long the page waits for the events that ended a notebook it was watching
  var FINAL_EVENTS_MS = 10000;

  // the page saw the deployment being prepared: open the notebook once it is ready
  var openOnReady = !cfg.readyAtLoad;
  var watching = false;   // the notebook is ready and the page asks the API about it
  var pollTimer = null;
  var stopping = null;    // {since, discard, failedBefore, sawSaving} while a stop is asked
  var toggling = false;   // a change of the checkbox is on its way
  var troubled = false;   // the last look at the notebook failed
  var keptRunning = false; // the status line says a stop's save failed
  var lastSave = null;
  var shownSave = "";
  var sent = 0;           // API answers are applied in the order they were asked for
  var applied = 0;

  function show(element, visible) { element.classList.toggle("hidden", !visible); }

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  function setStep(phase) {
    var current = cfg.stepOf[phase];
    if (current === undefined) { return; }
    steps.forEach(function (li, i) {
      li.classList.toggle("done", i < current || phase === P.READY);
      li.classList.toggle("current", i === current && phase !== P.READY);
      li.classList.remove("stuck");
    });
  }

  function markFailed() {
    var current = document.querySelector(".steps li.current") || steps[0];
    current.classList.remove("current");
    current.classList.add("stuck");
  }

  function appendLog(message) {
    if (!message) { return; }
    var atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
    logBox.appendChild(document.createTextNode(message));
    if (logBox.textContent.length > MAX_LOG_CHARS) {
      logBox.textContent = logBox.textContent.slice(-MAX_LOG_CHARS / 2);
    }
    if (atBottom) { logBox.scrollTop = logBox.scrollHeight; }
  }

  function lastLine(message) {
    var lines = (message || "").trim().split("\n");
    return lines[lines.length - 1];
  }

  function notebookUrl(event) {
    var url = new URL(cfg.urlpath || event.urlpath || "", event.url);  // the link's, else .booklab.yml's
    url.searchParams.set("token", event.token);
    return url.toString();
  }

  function close() {
    if (source) { source.close(); source = null; }
  }

  // --- the last save to GitLab, as the API describes it -------------------------------

  function webLink(url) {
    try {
      var parsed = new URL(url, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.toString() : null;
    } catch (e) {
      return null;
    }
  }

  function clock(seconds) {
    if (!seconds) { return ""; }
    return " at " + new Date(seconds * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }

  function renderSave(save) {
    var line = saving.line;
    line.textContent = "";
    line.className = "save-status";
    if (!save) { return; }
    function text(value) { line.appendChild(document.createTextNode(value)); }
    function branch(name) {
      var code = document.createElement("code");
      code.textContent = name;
      line.appendChild(code);
    }
    if (save.state === S.SAVED && save.branch) {
      text("Saved your changes to branch ");
      branch(save.branch);
      text(clock(save.saved_at) + ".");
      line.classList.add("good");
    } else {
      text(save.message || "");
      if (save.branch && save.state !== S.SAVING) {
        text(save.state === S.FAILED ? " Your earlier saves are on branch " : " Your saved changes are on branch ");
        branch(save.branch);
        text(".");
      }
      if (save.state === S.FAILED) { line.classList.add("bad"); }
    }
    var url = save.state !== S.SAVING && save.merge_request_url && webLink(save.merge_request_url);
    if (url) {
      var link = document.createElement("a");
      link.href = url;
      link.rel = "noopener";
      link.target = "_blank";
      link.textContent = "Open a merge request";
      text(" ");
      line.appendChild(link);
    }
  }

  function showSave(save) {
    lastSave = save || null;
    var key = JSON.stringify(lastSave);
    if (key !== shownSave) {  // unchanged: left alone, so that screen readers say it once
      shownSave = key;
      renderSave(lastSave);
    }
    buttons.saveNow.disabled = Boolean(stopping) || Boolean(lastSave && lastSave.state === S.SAVING);
    show(buttons.discard, watching && Boolean(lastSave && lastSave.state === S.FAILED));
  }

  function saveTrouble(message) {
    shownSave = "";  // the next answer shows the save again
    saving.line.textContent = message;
    saving.line.className = "save-status bad";
  }

  // --- a ready notebook: its controls, and a look at it now and then ------------------

  function runningStatus() {
    if (!stopping) {
      setStatus("Your notebook is ready.", "good");
    } else if (stopping.discard) {
      setStatus("Stopping without saving your changes…");
    } else {
      setStatus(saving.checkbox.checked ? "Saving your changes to GitLab, then stopping…" : "Stopping…");
    }
  }

  function schedule(delay) {
    clearTimeout(pollTimer);
    pollTimer = watching ? setTimeout(refresh, delay) : null;
  }

  function watch() {
    watching = true;
    show(saving.box, true);
    show(saving.choice, true);
    show(saving.actions, true);
    runningStatus();
    refresh();
  }

  function refresh() {
    call("GET", "").then(applyAnswer, function (error) {
      if (!watching) { return; }
      troubled = true;
      setStatus("Booklab did not answer (" + error.message + "): trying again…", "bad");
      schedule(SLOW_POLL);
    });
  }

  function followStop(save) {
    var state = save && save.state;
    if (state === S.SAVING) { stopping.sawSaving = true; }
    if (state === S.FAILED && !stopping.discard &&
        (stopping.sawSaving || !stopping.failedBefore || Date.now() - stopping.since > STALE_FAILURE_MS)) {
      stopping = null;  // its save failed: the notebook keeps running, with its work
      keptRunning = true;
      setStatus(KEPT_RUNNING, "bad");
    }
  }

  function update(deployment) {
    if (!watching) { return; }
    if (deployment.status === P.READY) {
      if (!toggling) { saving.checkbox.checked = Boolean(deployment.save_back); }
      if (stopping) { followStop(deployment.save); }
      var failed = Boolean(deployment.save && deployment.save.state === S.FAILED);
      if (troubled || (keptRunning && !failed)) {
        troubled = false;
        keptRunning = keptRunning && failed;
        if (keptRunning) { setStatus(KEPT_RUNNING, "bad"); } else { runningStatus(); }
      }
      showSave(deployment.save);
      var busy = stopping || (deployment.save && deployment.save.state === S.SAVING);
      schedule(busy ? FAST_POLL : SLOW_POLL);
    } else if (deployment.status === P.STOPPED || deployment.status === P.FAILED) {
      ended(deployment);
    } else {
      window.location.reload();  // launched again meanwhile (in another tab): follow that
    }
  }

  function endControls() {
    watching = false;
    stopping = null;
    clearTimeout(pollTimer);
    show(saving.choice, false);
    show(saving.actions, false);
    show(buttons.discard, false);
    show(saving.box, Boolean(lastSave));  // the last save's branch and link stay
  }

  function parseEvents(text) {
    var events = [];
    text.split(/\r?\n\r?\n/).forEach(function (block) {
      var data = [];
      var id = 0;
      block.split(/\r?\n/).forEach(function (line) {
        if (line.indexOf("data:") === 0) { data.push(line.slice(5).replace(/^ /, "")); }
        if (line.indexOf("id:") === 0) { id = Number(line.slice(3).trim()) || 0; }
      });
      if (!data.length) { return; }
      try { events.push(JSON.parse(data.join("\n"))); } catch (e) { return; }
      if (id) { lastEventId = id; }
    });
    return events;
  }

  // the events after the last one the page saw (the one that ended the notebook among
  // them), read from the event stream, which ends after it; never one that launches
  function finalEvents() {
    var url = cfg.streamUrl.split("?")[0] + "?last_event_id=" + lastEventId;
    var abort = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (abort) { abort.abort(); } }, FINAL_EVENTS_MS);
    return fetch(url, {
      credentials: "same-origin", cache: "no-store", headers: {"Accept": "text/event-stream"},
      signal: abort ? abort.signal : undefined
    }).then(function (response) {
      return response.status === 200 ? response.text() : "";
    }).then(parseEvents, function () { return []; }).then(function (events) {
      clearTimeout(timer);
      return events;
    });
  }

  // a notebook that ended saves nothing more: a save still said to be under way is
  // shown as the last save that worked, if any
  function lastWorkingSave(save) {
    if (!save || save.state !== S.SAVING) { return save; }
    return save.branch ? {state: S.SAVED, branch: save.branch, merge_request_url: save.merge_request_url,
                          saved_at: save.saved_at} : null;
  }

  function ended(deployment) {
    showSave(lastWorkingSave(deployment.save));
    endControls();
    finalEvents().then(function (events) {
      var last = null;
      events.forEach(function (event) {
        if (event.phase === P.READY) { return; }
        handle(event);
        if (cfg.final.indexOf(event.phase) >= 0) { last = event; }
      });
      if (!last) { handle({phase: deployment.status, message: ""}); }
    });
  }

  // --- the event stream ----------------------------------------------------------------

  function handle(event) {
    appendLog(event.message);
    setStep(event.phase);
    if (event.phase === P.WAITING && event.position) {
      setStatus("Waiting for a free runner: position " + event.position + " in the queue.");
    } else if (cfg.final.indexOf(event.phase) < 0) {
      setStatus(lastLine(event.message) || event.phase);
    }
    if (event.phase === P.READY) {
      close();
      var target = notebookUrl(event);
      buttons.open.href = target;
      show(buttons.open, true);
      if (openOnReady) {
        setStatus("Your notebook is ready: opening it…", "good");
        window.location.assign(target);
      } else {
        watch();
      }
    } else if (event.phase === P.FAILED) {
      close();
      endControls();
      markFailed();
      setStatus(lastLine(event.message) || "The deployment failed.", "bad");
      show(buttons.open, false);
      show(buttons.retry, true);
      show(buttons.stop, false);
    } else if (event.phase === P.STOPPED) {
      close();
      endControls();
      steps.forEach(function (li) { li.classList.remove("current"); });
      setStatus(lastLine(event.message) || "Stopped.", "bad");
      buttons.retry.textContent = "Launch again";
      show(buttons.open, false);
      show(buttons.retry, true);
      show(buttons.stop, false);
    }
  }

  function follow() {
    close();
    source = new EventSource(cfg.streamUrl);
    source.onmessage = function (message) {
      lastEventId = Number(message.lastEventId) || lastEventId;
      handle(JSON.parse(message.data));
    };
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        setStatus("Lost the connection to Booklab: reload the page to follow the deployment again.", "bad");
      } else if (source) {
        setStatus("Connection lost: reconnecting…");
      }
    };
  }

  // --- the buttons ---------------------------------------------------------------------

  function call(method, action, body) {
    var headers = {"Accept": "application/json"};
    var init = {method: method, credentials: "same-origin", cache: "no-store", headers: headers};
    if (method !== "GET") { headers["X-CSRF-Token"] = cfg.csrf; }
    if (body) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var order = ++sent;
    return fetch(cfg.api + (action ? "/" + action : ""), init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok) { throw new Error(answer.error || ("Booklab answered " + response.status)); }
        if (order < applied) { return {status: P.READY, stale: true}; }
        applied = order;
        return answer;
      });
    });
  }

  function post(action, body) { return call("POST", action, body); }

  function applyAnswer(answer) {
    if (!answer.stale) { update(answer); }
  }

  function askToStop(discard) {
    if (watching) {
      keptRunning = false;
      stopping = {since: Date.now(), discard: discard, sawSaving: false,
                  failedBefore: Boolean(lastSave && lastSave.state === S.FAILED)};
      showSave(lastSave);
      runningStatus();
    } else {
      setStatus("Stopping…");
    }
    return post("stop", discard ? {discard: true} : null).then(applyAnswer, function (error) {
      stopping = null;
      showSave(lastSave);
      setStatus(error.message, "bad");
    });
  }

  buttons.stop.addEventListener("click", function () {
    buttons.stop.disabled = true;
    askToStop(false).then(function () { buttons.stop.disabled = false; });
  });

  buttons.discard.addEventListener("click", function () {
    if (!window.confirm("Stop the notebook and lose the changes that are not saved to GitLab?")) { return; }
    buttons.discard.disabled = true;
    askToStop(true).then(function () { buttons.discard.disabled = false; });
  });

  buttons.saveNow.addEventListener("click", function () {
    buttons.saveNow.disabled = true;
    post("save").then(applyAnswer, function (error) {
      saveTrouble(error.message);
      buttons.saveNow.disabled = false;
    });
  });

  saving.checkbox.addEventListener("change", function () {
    var wanted = saving.checkbox.checked;
    toggling = true;
    saving.checkbox.disabled = true;
    post("save_back", {enabled: wanted}).then(function (answer) {
      toggling = false;
      applyAnswer(answer);
    }, function (error) {
      toggling = false;
      saving.checkbox.checked = !wanted;
      saveTrouble(error.message);
    }).then(function () { saving.checkbox.disabled = false; });
  });

  buttons.retry.addEventListener("click", function () {
    buttons.retry.disabled = true;
    post("retry").then(function () {
      logBox.textContent = "";
      lastEventId = 0;
      openOnReady = true;
      show(saving.box, false);
      show(buttons.retry, false);
      show(buttons.stop, true);
      setStatus("Starting again…");
      follow();
    }, function (error) {
      setStatus(error.message, "bad");
    }).then(function () { buttons.retry.disabled = false; });
  });

  // back to this page from the notebook, restored as it was left ("opening it…"):
  // load it again, which shows a ready notebook's controls
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  follow();
})();
