// ModelWatch action forms: each <form class="action" data-url=...> POSTs its fields as JSON to the API
// (the Airflow session cookie authenticates), shows the answer in #action-status and reloads on success.
// A form with several buttons (the labelling page: BUY, SELL, HOLD, Skip) lets the clicked button choose: its
// data-url and data-done replace the form's, and its name=value is sent with the fields.
(function () {
  "use strict";
  var status = document.getElementById("action-status");
  function say(text, ok) {
    status.textContent = text;
    status.className = ok ? "ok" : "critical";
  }
  document.querySelectorAll("form.action").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var submitter = event.submitter || form.querySelector("button");
      var body = {};
      new FormData(form).forEach(function (value, key) { body[key] = value; });
      if (submitter.name) { body[submitter.name] = submitter.value; }
      var url = submitter.dataset.url || form.dataset.url;
      var done = submitter.dataset.done || form.dataset.done;
      var buttons = form.querySelectorAll("button");
      function enable(on) { buttons.forEach(function (b) { b.disabled = !on; }); }
      enable(false);
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify(body)
      }).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          if (res.ok) {
            say(done + " by " + (data.by || data.requested_by || "you") + ".", true);
            window.setTimeout(function () { window.location.reload(); }, 600);
          } else {
            var detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
            say("Refused (" + res.status + "): " + detail, false);
            enable(true);
          }
        });
      }).catch(function (err) {
        say("Request failed: " + err, false);
        enable(true);
      });
    });
  });
})();
