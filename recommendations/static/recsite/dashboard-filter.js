// Live validation of the dashboard's filter form: each pause in typing POSTs the expression to the
// form's data-check-url and shows the answer under the textarea: "Valid ..." or the parser's
// message with the expression's line and a caret under the position, and the tokens it expected.
(function () {
  "use strict";
  const form = document.getElementById("filter-form");
  if (!form) return;
  const expression = form.elements.expression;
  const group = form.elements.dataset_group;
  const output = document.getElementById("expression-check");
  const token = form.elements.csrfmiddlewaretoken.value;
  let sequence = 0;
  let timer = null;

  function show(answer, text) {
    output.replaceChildren();
    output.className = answer.valid ? "valid" : "invalid";
    expression.setAttribute("aria-invalid", answer.valid ? "false" : "true");
    const message = document.createElement("div");
    message.className = "message";
    message.textContent = answer.message;
    output.append(message);
    if (!answer.valid && answer.line && answer.column) {
      const line = text.split("\n")[answer.line - 1] || "";
      const caret = document.createElement("pre");
      caret.className = "caret";
      caret.textContent = line + "\n" + " ".repeat(Math.max(answer.column - 1, 0)) + "^";
      output.append(caret);
    }
    if (!answer.valid && answer.expected && answer.expected.length) {
      const expected = document.createElement("div");
      expected.className = "expected";
      expected.textContent = "Expected: " + answer.expected.join(", ");
      output.append(expected);
    }
  }

  async function check() {
    const text = expression.value;
    const mine = ++sequence;
    if (!text.trim()) {
      output.replaceChildren();
      output.className = "";
      return;
    }
    try {
      const response = await fetch(form.dataset.checkUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ datasetGroup: group.value, expression: text }),
      });
      const answer = await response.json();
      if (mine !== sequence) return; // a newer check is on its way
      if (!response.ok) {
        show({ valid: false, message: answer.error || `check failed (${response.status})` }, text);
        return;
      }
      show(answer, text);
    } catch (error) {
      if (mine === sequence) show({ valid: false, message: `check failed: ${error.message}` }, text);
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  }

  expression.addEventListener("input", later);
  group.addEventListener("change", check);
  if (expression.value) check();
})();
