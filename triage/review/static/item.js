// One-key review on the item page: 1-9 choose the Nth label button, Enter confirms the chosen
// label, S skips, U undoes. Keys typed into the note (or any field) are left alone. Every
// control is a labelled button in a form, so the page works with Tab and Enter without this.
(function () {
  "use strict";

  var form = document.getElementById("label-form");
  var buttons = form ? Array.prototype.slice.call(form.querySelectorAll("button[name=label]")) : [];
  var skip = document.getElementById("skip-button");
  var undo = document.getElementById("undo-button");
  var status = document.getElementById("key-status");
  var chosen = null;

  function typing(target) {
    return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
  }

  function choose(button) {
    buttons.forEach(function (each) {
      each.classList.toggle("chosen", each === button);
    });
    chosen = button;
    button.focus();
    if (status) {
      status.textContent = "Chosen: " + button.value + ". Press Enter to confirm.";
    }
  }

  function press(button) {
    if (button && !button.disabled) {
      button.click();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var target = event.target;
    if (typing(target)) {
      return;
    }
    var key = event.key;
    if (key.length === 1 && key >= "1" && key <= "9") {
      var button = buttons[Number(key) - 1];
      if (button) {
        event.preventDefault();
        choose(button);
      }
    } else if (key === "Enter") {
      // On a focused control Enter does what it always does (the chosen button is focused,
      // so Enter submits it natively); elsewhere it confirms the chosen label.
      var onControl = target && target.closest && target.closest("a, button, summary");
      if (chosen && !onControl) {
        event.preventDefault();
        press(chosen);
      }
    } else if (key === "s" || key === "S") {
      event.preventDefault();
      press(skip);
    } else if (key === "u" || key === "U") {
      event.preventDefault();
      press(undo);
    }
  });
})();
