// ModelWatch action forms: each <form class="action" data-url=...> POSTs its fields as JSON to the API
// (the Airflow session cookie authenticates), shows the answer in #action-status and reloads on success.
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
      var body = {};
      new FormData(form).forEach(function (value, key) { body[key] = value; });
      var button = form.querySelector("button");
      button.disabled = true;
      fetch(form.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify(body)
      }).then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          if (res.ok) {
            say(form.dataset.done + " by " + (data.by || data.requested_by || "you") + ".", true);
            window.setTimeout(function () { window.location.reload(); }, 600);
          } else {
            var detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
            say("Refused (" + res.status + "): " + detail, false);
            button.disabled = false;
          }
        });
      }).catch(function (err) {
        say("Request failed: " + err, false);
        button.disabled = false;
      });
    });
  });
})();
