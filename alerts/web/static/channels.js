// My channels (/channels): "Send a test" through the API, and the add form showing only the fields
// of the kind chosen. Everything shown comes in as text (alertsPage.el), never as HTML.
"use strict";
(function () {
  const { api, el } = window.alertsPage;

  function outcome(result) {
    if (result.ok) return el("div", { class: "ok" }, "Sent to " + result.destination + ": check that it arrived.");
    const when = result.retryable === true ? " (temporary: try again later)" : "";
    return el("div", { class: "error" }, "Not sent to " + result.destination + ": " + (result.error || "failed") + when);
  }

  async function sendTest(button) {
    const id = button.dataset.testChannel;
    const out = document.getElementById("test-" + id);
    button.disabled = true;
    out.replaceChildren(el("span", { class: "muted" }, "Sending a test…"));
    try {
      const answer = await api("/api/v1/channels/" + encodeURIComponent(id) + "/test", { method: "POST" });
      out.replaceChildren(...answer.results.map(outcome));
    } catch (error) {
      out.replaceChildren(el("div", { class: "error" }, "The test was not sent: " + error.message));
    } finally {
      button.disabled = false;
    }
  }

  for (const button of document.querySelectorAll("button[data-test-channel]")) {
    button.addEventListener("click", () => sendTest(button));
  }

  // The add form: a Slack webhook, a Slack channel or email addresses, one set of fields at a time.
  const kind = document.getElementById("kind");
  if (kind) {
    const show = () => {
      for (const field of document.querySelectorAll(".add-channel [data-kind]")) {
        const mine = field.dataset.kind === kind.value;
        field.hidden = !mine;
        for (const input of field.querySelectorAll("input")) input.required = mine;
      }
    };
    kind.addEventListener("change", show);
    show();
  }
})();
