// The deploy page: follows the deployment's event stream (BinderHub's format), shows the
// phase progress and the log, and opens the notebook once it is ready. A notebook ready
// already when the page loaded (the user came back to it) is not opened: the page shows
// its link and controls (save back, Save now, Stop) and asks the API about it now and then,
// to show its saves and notice its end. Phase names and save states come from the server.
(function () {
  "use strict";
  function byId(id) { return document.getElementById(id); }
  var cfg = JSON.parse(byId("deploy-config").textContent);
  var P = cfg.phases;      // phase names, from the server
  var S = cfg.saveStates;  // save states, from the server
  var logBox = byId("log");
  var statusLine = byId("status");
  var steps = document.querySelectorAll(".steps li");
  var buttons = {open: byId("open"), retry: byId("retry"), rebuild: byId("rebuild"), stop: byId("stop"),
                 saveNow: byId("save-now"), discard: byId("discard")};
  var saving = {box: byId("save-box"), choice: byId("save-choice"), checkbox: byId("save-back"),
                line: byId("save-status"), actions: byId("save-actions")};
  var kept = {box: byId("kept-box"), list: byId("kept-list")};
  var MAX_LOG_CHARS = 2000000;
  var FAST_POLL = 2000;   // ms between two looks at a ready notebook while a save or stop runs
  var SLOW_POLL = 10000;  // and otherwise

  var source = null;                   // the open EventSource
  var lastEventId = "";                // the id of the last event the page saw: "<run>.<event>"
  var watchedRun = null;               // the run whose ready notebook the page watches
  var openOnReady = !cfg.readyAtLoad;  // the page saw it being prepared: open it once ready
  var watching = false;                // the notebook is ready and the page asks the API about it
  var pollTimer = null;
  var stopping = null;                 // {discard, saves} while a Stop of the ready notebook runs
  var keptRunning = false;             // that Stop's save failed, and the save is still a failure
  var troubled = false;                // the last look at the notebook failed
  var lastSave = null;                 // the save as the API last described it
  var shownSave = "";                  // the save on screen (JSON): an unchanged one is not redrawn
  var sent = 0, applied = 0;           // API requests sent, and the last one whose answer was applied

  function show(element, visible) { element.classList.toggle("hidden", !visible); }

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  function lastLine(message) {
    var lines = (message || "").trim().split("\n");
    return lines[lines.length - 1];
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

  // text at the end of parent, alone or as the text of a new element of that tag
  function append(parent, text, tag) {
    var node = tag ? document.createElement(tag) : document.createTextNode(text);
    if (tag) { node.textContent = text; }
    return parent.appendChild(node);
  }

  function appendLog(message) {
    if (!message) { return; }
    var atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 40;
    append(logBox, message);
    if (logBox.textContent.length > MAX_LOG_CHARS) {
      logBox.textContent = logBox.textContent.slice(-MAX_LOG_CHARS / 2);
    }
    if (atBottom) { logBox.scrollTop = logBox.scrollHeight; }
  }

  function notebookUrl(event) {
    var url = new URL(cfg.urlpath || event.urlpath || "", event.url);  // the link's, else .booklab.yml's
    if (event.token) {  // none in hub mode: the hub's login guards the server
      url.searchParams.set("token", event.token);
    }
    return url.toString();
  }

  // --- the event stream ----------------------------------------------------------------

  // follows the events at url; onClosed: the stream failed for good (or had nothing more)
  function follow(url, onClosed) {
    close();
    source = new EventSource(url);
    source.onmessage = function (message) {
      lastEventId = message.lastEventId || lastEventId;
      handle(JSON.parse(message.data));
    };
    source.onerror = function (error) {  // the EventSource reconnects by itself unless CLOSED
      if (error.target.readyState === EventSource.CLOSED) {
        onClosed();
      } else {
        setStatus("Connection lost: reconnecting…");
      }
    };
  }

  function close() {
    if (source) { source.close(); source = null; }
  }

  function lostConnection() {
    setStatus("Lost the connection to Booklab: reload the page to follow the deployment again.", "bad");
  }

  function handle(event) {
    appendLog(event.message);
    setStep(event.phase);
    if (event.phase === P.READY) {
      onReady(event);
    } else if (event.phase === P.FAILED || event.phase === P.STOPPED) {
      onEnd(event);
    } else if (cfg.final.indexOf(event.phase) < 0) {
      showProgress(event);
    }
  }

  function showProgress(event) {
    var queued = event.phase === P.WAITING && event.position;
    setStatus(queued ? "Waiting for a free runner: position " + event.position + " in the queue."
                     : lastLine(event.message) || event.phase);
  }

  function onReady(event) {
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
  }

  function onEnd(event) {
    close();
    endControls();
    if (event.phase === P.FAILED) {
      var current = document.querySelector(".steps li.current") || steps[0];
      current.classList.remove("current");
      current.classList.add("stuck");
      setStatus(lastLine(event.message) || "The deployment failed.", "bad");
    } else {
      steps.forEach(function (li) { li.classList.remove("current"); });
      setStatus(lastLine(event.message) || "Stopped.", "bad");
      buttons.retry.textContent = "Launch again";
    }
    show(buttons.open, false);
    show(buttons.retry, true);
    show(buttons.rebuild, true);
    show(buttons.stop, false);
    call("GET", "").then(function (answer) { if (answer) { showKept(answer.kept); } }, function () {});
  }

  // --- changes kept of saves that were given up: their downloads ----------------------

  function showKept(found) {
    kept.list.textContent = "";
    (found || []).forEach(function (changes) {
      var item = append(kept.list, "", "li");
      var link = append(item, "Download " + changes.filename, "a");
      link.href = webLink(changes.download) || "#";
      link.setAttribute("download", changes.filename);
      append(item, " (" + changes.files + " files, " + Math.max(1, Math.round(changes.size / 1024)) + " KB, kept" +
             clock(changes.at) + "). " + changes.reason);
    });
    show(kept.box, Boolean(found && found.length));
  }

  // --- the last save to GitLab, as the API describes it -------------------------------

  function webLink(url) {  // links are http(s) only
    try {
      var parsed = new URL(url, window.location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.toString() : null;
    } catch (e) { return null; }
  }

  function clock(seconds) {
    if (!seconds) { return ""; }
    return " at " + new Date(seconds * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }

  function renderSave(save) {
    var line = saving.line;
    var saved = Boolean(save && save.state === S.SAVED && save.branch);
    line.textContent = "";
    line.className = "save-status" + (saved ? " good" : save && save.state === S.FAILED ? " bad" : "");
    if (!save) { return; }
    if (saved) {
      append(line, "Saved your changes to branch ");
      append(line, save.branch, "code");
      append(line, clock(save.saved_at) + ".");
    } else {
      append(line, save.message || "");
      if (save.branch && save.state !== S.SAVING) {
        append(line, " Your " + (save.state === S.FAILED ? "earlier saves" : "saved changes") + " are on branch ");
        append(line, save.branch, "code");
        append(line, ".");
      }
    }
    var url = save.state !== S.SAVING && save.merge_request_url && webLink(save.merge_request_url);
    if (url) {
      append(line, " ");
      var link = append(line, "Open a merge request", "a");
      link.href = url;
      link.rel = "noopener";
      link.target = "_blank";
    }
  }

  function showSave(save) {
    lastSave = save || null;
    var key = JSON.stringify(lastSave);
    if (key !== shownSave) {  // unchanged: left alone, so that screen readers say it once
      shownSave = key;
      renderSave(lastSave);
    }
    var state = lastSave && lastSave.state;
    buttons.saveNow.disabled = Boolean(stopping) || state === S.SAVING;
    show(buttons.discard, watching && state === S.FAILED);
  }

  function saveTrouble(message) {
    shownSave = "";  // the next answer shows the save again
    saving.line.textContent = message;
    saving.line.className = "save-status bad";
  }

  // a notebook that ended saves nothing more: a save still said to be under way is
  // shown as the last save that worked, if any
  function lastWorkingSave(save) {
    if (!save || save.state !== S.SAVING) { return save; }
    return save.branch ? {state: S.SAVED, branch: save.branch, merge_request_url: save.merge_request_url,
                          saved_at: save.saved_at} : null;
  }

  // --- a ready notebook: its controls, and a look at it now and then ------------------

  function watch() {
    watching = true;
    show(saving.box, true);
    show(saving.choice, true);
    show(saving.actions, true);
    runningStatus();
    refresh();
  }

  function runningStatus() {
    if (keptRunning) {
      setStatus("Your notebook keeps running: your changes could not be saved.", "bad");
    } else if (!stopping) {
      setStatus("Your notebook is ready.", "good");
    } else if (stopping.discard) {
      setStatus("Stopping without saving your changes…");
    } else {
      setStatus(stopping.saves ? "Saving your changes to GitLab, then stopping…" : "Stopping…");
    }
  }

  function refresh() {
    call("GET", "").then(applyAnswer, function (error) {
      if (!watching) { return; }
      troubled = true;
      setStatus("Booklab did not answer (" + error.message + "): trying again…", "bad");
      pollLater();
    });
  }

  function pollLater() {
    var busy = stopping || (lastSave && lastSave.state === S.SAVING);
    clearTimeout(pollTimer);
    pollTimer = watching ? setTimeout(refresh, busy && !troubled ? FAST_POLL : SLOW_POLL) : null;
  }

  function applyAnswer(answer) {
    if (!answer) {
      pollLater();  // stale: the look it replaced may have been this one
    } else if (!watching) {
      return;
    } else if (watchedRun !== null && answer.run !== watchedRun) {
      window.location.reload();  // launched again meanwhile (in another tab): follow that
    } else if (answer.status === P.READY) {
      watchedRun = answer.run;
      updateReady(answer);
    } else if (answer.status === P.STOPPING) {
      watchedRun = answer.run;
      stoppingAnswer(answer);
    } else if (answer.status === P.STOPPED || answer.status === P.FAILED) {
      ended(answer);
    } else {
      window.location.reload();  // launched again meanwhile (in another tab): follow that
    }
  }

  function stoppingAnswer(deployment) {  // ended by a Stop (here or elsewhere), a cull, or its runner
    if (!stopping) {
      stopping = {discard: false, saves: Boolean(deployment.save && deployment.save.state === S.SAVING)};
      runningStatus();
    }
    showSave(deployment.save);
    pollLater();
  }

  function updateReady(deployment) {
    if (!saving.checkbox.disabled) {  // else the user's change of it is on its way
      saving.checkbox.checked = Boolean(deployment.save_back);
    }
    // the server shows a Stop's save as under way at once: a failure seen after that
    // Stop is its own, and the notebook keeps running
    var failed = Boolean(deployment.save && deployment.save.state === S.FAILED);
    var wasKept = keptRunning;
    keptRunning = failed && (keptRunning || Boolean(stopping && stopping.saves));
    if (keptRunning) { stopping = null; }
    if (troubled || keptRunning !== wasKept) { runningStatus(); }
    troubled = false;
    showSave(deployment.save);
    pollLater();
  }

  function ended(deployment) {
    showSave(lastWorkingSave(deployment.save));
    endControls();
    // the events after the last one seen, the one that ended the notebook among them
    var after = lastEventId || (deployment.run + ".0");
    follow(cfg.streamUrl.split("?")[0] + "?last_event_id=" + encodeURIComponent(after), function () {
      handle({phase: deployment.status, message: ""});
    });
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

  // --- the API and the buttons -------------------------------------------------------

  // Answers are applied in the order their requests were sent, and an action (a POST)
  // makes the answers to earlier requests stale: a look sent before a Stop may still show
  // an older failed save. A stale answer is null.
  function call(method, action, body) {
    var headers = {"Accept": "application/json"};
    if (method !== "GET") { headers["X-CSRF-Token"] = cfg.csrf; }
    if (body) { headers["Content-Type"] = "application/json"; }
    var init = {method: method, credentials: "same-origin", cache: "no-store", headers: headers,
                body: body ? JSON.stringify(body) : undefined};
    var order = ++sent;
    if (method !== "GET") { applied = order; }
    return fetch(cfg.api + (action ? "/" + action : ""), init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok) { throw new Error(answer.error || ("Booklab answered " + response.status)); }
        if (order < applied) { return null; }
        applied = order;
        return answer;
      });
    });
  }

  function post(action, body) { return call("POST", action, body); }

  function askToStop(button, discard) {
    button.disabled = true;
    if (watching) {
      keptRunning = false;
      stopping = {discard: discard, saves: !discard && saving.checkbox.checked};
      showSave(lastSave);
      runningStatus();
    } else {
      setStatus("Stopping…");
    }
    post("stop", discard ? {discard: true} : null).then(applyAnswer, function (error) {
      stopping = null;
      showSave(lastSave);
      setStatus(error.message, "bad");
    }).then(function () { button.disabled = false; });
  }

  function startAgain(launched) {  // the API's answer: the run it started (or joined)
    logBox.textContent = "";
    lastEventId = launched.requested_run + ".0";
    watchedRun = null;
    openOnReady = true;
    show(saving.box, false);
    show(kept.box, false);
    show(buttons.retry, false);
    show(buttons.rebuild, false);
    show(buttons.stop, true);
    setStatus("Starting again…");
    follow(cfg.streamUrl.split("?")[0] + "?last_event_id=" + encodeURIComponent(lastEventId), lostConnection);
  }

  buttons.stop.addEventListener("click", function () { askToStop(buttons.stop, false); });

  buttons.discard.addEventListener("click", function () {
    if (window.confirm("Stop the notebook and lose the changes that are not saved to GitLab?")) {
      askToStop(buttons.discard, true);
    }
  });

  buttons.saveNow.addEventListener("click", function () {
    buttons.saveNow.disabled = true;  // enabled again by the answer, once the save is over
    post("save").then(applyAnswer, function (error) {
      saveTrouble(error.message);
      buttons.saveNow.disabled = false;
    });
  });

  saving.checkbox.addEventListener("change", function () {
    var wanted = saving.checkbox.checked;
    saving.checkbox.disabled = true;  // until the answer; the looks meanwhile leave it alone
    post("save_back", {enabled: wanted}).then(applyAnswer, function (error) {
      saving.checkbox.checked = !wanted;
      saveTrouble(error.message);
    }).then(function () { saving.checkbox.disabled = false; });
  });

  function launchAgain(button, body) {
    button.disabled = true;
    post("retry", body).then(startAgain, function (error) { setStatus(error.message, "bad"); })
      .then(function () { button.disabled = false; });
  }

  buttons.retry.addEventListener("click", function () { launchAgain(buttons.retry, null); });
  // the image again, every layer (a dependency moved since it was built)
  buttons.rebuild.addEventListener("click", function () { launchAgain(buttons.rebuild, {rebuild: true}); });

  // back to this page from the notebook, restored as it was left ("opening it…"):
  // load it again, which shows a ready notebook's controls
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  follow(cfg.streamUrl, lostConnection);
})();
