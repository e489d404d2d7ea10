// The deploy page: follows the deployment's event stream (BinderHub's format), shows the
// phase progress and the log, and goes to the notebook when it is ready. Phase names come
// from the server (booklab.phases.Phase), never from this file.
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("deploy-config").textContent);
  var P = cfg.phases;
  var logBox = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var steps = document.querySelectorAll(".steps li");
  var buttons = {
    open: document.getElementById("open"),
    retry: document.getElementById("retry"),
    stop: document.getElementById("stop")
  };
  var source = null;
  var MAX_LOG_CHARS = 2000000;

  function show(button, visible) { button.classList.toggle("hidden", !visible); }

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
    var url = new URL(cfg.urlpath || "", event.url);
    url.searchParams.set("token", event.token);
    return url.toString();
  }

  function close() {
    if (source) { source.close(); source = null; }
  }

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
      setStatus("Your notebook is ready: opening it…", "good");
      window.location.assign(target);
    } else if (event.phase === P.FAILED) {
      close();
      markFailed();
      setStatus(lastLine(event.message) || "The deployment failed.", "bad");
      show(buttons.retry, true);
      show(buttons.stop, false);
    } else if (event.phase === P.STOPPED) {
      close();
      steps.forEach(function (li) { li.classList.remove("current"); });
      setStatus(lastLine(event.message) || "Stopped.", "bad");
      buttons.retry.textContent = "Launch again";
      show(buttons.retry, true);
      show(buttons.stop, false);
    }
  }

  function follow() {
    close();
    source = new EventSource(cfg.streamUrl);
    source.onmessage = function (message) { handle(JSON.parse(message.data)); };
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        setStatus("Lost the connection to Booklab: reload the page to follow the deployment again.", "bad");
      } else if (source) {
        setStatus("Connection lost: reconnecting…");
      }
    };
  }

  function post(action) {
    return fetch(cfg.api + "/" + action, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRF-Token": cfg.csrf, "Accept": "application/json"}
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw new Error(body.error || ("Booklab answered " + response.status)); }
        return body;
      });
    });
  }

  buttons.stop.addEventListener("click", function () {
    buttons.stop.disabled = true;
    setStatus("Stopping…");
    post("stop").catch(function (error) { setStatus(error.message, "bad"); })
      .then(function () { buttons.stop.disabled = false; });
  });

  buttons.retry.addEventListener("click", function () {
    buttons.retry.disabled = true;
    post("retry").then(function () {
      logBox.textContent = "";
      show(buttons.retry, false);
      show(buttons.stop, true);
      setStatus("Starting again…");
      follow();
    }, function (error) {
      setStatus(error.message, "bad");
    }).then(function () { buttons.retry.disabled = false; });
  });

  follow();
})();
