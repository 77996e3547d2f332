// The few behaviours htmx does not cover: closing a dialog, showing a form's parts for a select's value,
// removing a dialog row, select-all check boxes, narrowing a dialog's list of choices as you type, copying a
// digest or pull command, following a container log, pausing a table's refresh while a row is selected, placing
// the popups of a table's rows. The Content-Security-Policy allows no inline script and no eval, so no behaviour
// lives in templates (no onclick=, hx-on or hx-trigger filters).
(function () {
  "use strict";

  function closeModal() {
    const modal = document.getElementById("modal");
    if (modal) modal.replaceChildren();
  }

  document.addEventListener("click", function (event) {
    const dismiss = event.target.closest("[data-dismiss='modal']");
    if (dismiss) {
      event.preventDefault();
      closeModal();
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      event.preventDefault();
      copyText(copy);
      return;
    }
    const remove = event.target.closest("[data-remove-row]");
    if (remove) {
      event.preventDefault();
      remove.closest("[data-row]").remove();
    }
  });

  function copyText(button) {
    // The clipboard API needs a secure context; elsewhere select the text so Ctrl+C copies it.
    const done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(button.dataset.copy).then(done);
      return;
    }
    const code = button.parentElement.querySelector("code");
    if (code) window.getSelection().selectAllChildren(code);
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeModal();
  });

  document.addEventListener("input", function (event) {
    const filter = event.target.closest("[data-filter-choices]");
    if (!filter) return;
    const text = filter.value.trim().toLowerCase();
    document.querySelectorAll(filter.dataset.filterChoices + " [data-choice]").forEach(function (choice) {
      choice.hidden = text !== "" && !choice.dataset.choice.includes(text);
    });
  });

  // A followed container log stays scrolled to its newest line, unless the reader scrolled up to read.
  let logAtBottom = true;
  document.addEventListener("htmx:beforeSwap", function (event) {
    const log = document.getElementById("log-lines");
    if (log && event.detail.target === log) logAtBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  });
  document.addEventListener("htmx:afterSettle", function () {
    const log = document.getElementById("log-lines");
    if (log && logAtBottom) log.scrollTop = log.scrollHeight;
  });

  // A dialog refused with errors (a 4xx answer re-renders it) keeps what the user typed in boxes the server does not
  // echo (a search box), and shows its first error: scrolled into view inside the dialog, its field focused.
  const KEPT = "input[type='search'], input[type='text'], input:not([type]), textarea";
  let typed = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    typed = null;
    if (event.detail.target.id !== "modal" || event.detail.xhr.status < 400) return;
    typed = new Map();
    event.detail.target.querySelectorAll(KEPT).forEach(function (field) {
      if (field.id && field.value) typed.set(field.id, field.value);
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "modal" || typed === null) return;
    typed.forEach(function (value, id) {
      const field = document.getElementById(id);
      if (field && field.matches(KEPT) && field.value === "") field.value = value;
    });
    typed = null;
    const error = event.detail.target.querySelector(".clr-error, .wharf-field-error, .modal-body .alert-danger");
    if (!error) return;
    error.scrollIntoView({ block: "nearest" });
    const field = error.matches(".clr-error") ? error.querySelector("input, select, textarea") : null;
    if (field) field.focus({ preventScroll: true });
  });

  // A table that refreshes itself (data-pause-while-checked="<check box name>") waits while one of its rows is
  // selected: the refresh would clear the selection.
  document.addEventListener("htmx:beforeRequest", function (event) {
    const poller = event.detail.elt;
    const name = poller.dataset ? poller.dataset.pauseWhileChecked : undefined;
    if (!name) return;
    const region = poller.closest(".wharf-table-region");
    if (region && region.querySelector("input[name='" + name + "']:checked")) event.preventDefault();
  });

  // A search swaps new options into the header's project selector rather than a new drop-down, so a keyboard user's
  // focus and a choice already posted survive a search that lands late; moved options keep the selection they had
  // where htmx parsed them, so choose the one the server marked.
  document.addEventListener("htmx:afterSwap", function (event) {
    const select = event.detail.target;
    if (select.id !== "project-selector") return;
    const marked = select.querySelector("option[selected]");
    if (marked) marked.selected = true;
  });

  // A select that controls parts of its form (data-controls="<name>") shows the parts made for its value
  // (data-shown-for="<name>" data-value="<value>") and hides the others: a rule's trigger and its options.
  document.addEventListener("change", function (event) {
    const control = event.target.closest("[data-controls]");
    if (!control || !control.form) return;
    control.form.querySelectorAll("[data-shown-for='" + control.dataset.controls + "']").forEach(function (part) {
      part.hidden = part.dataset.value !== control.value;
    });
  });

  // A popup in a table region (a row menu, a tag's vulnerability summary) is fixed-position, so the region's sideways
  // scrolling does not cut it off (wharf.css). Placed by its anchor (the element that holds it): below it, or above it
  // when the window has no room below, and kept inside the window; again when the page scrolls under it.
  const POPUPS = ".wharf-table-region .wharf-vuln-summary, .wharf-table-region .wharf-row-menu .wharf-menu";

  function place(popup) {
    if (!popup.getClientRects().length) return;
    const anchor = popup.parentElement.getBoundingClientRect();
    const box = popup.getBoundingClientRect();
    // Flush with the anchor: a gap would end the hover on the way from the anchor into the popup.
    let top = anchor.bottom;
    if (top + box.height > window.innerHeight) top = anchor.top - box.height;
    const left = Math.min(anchor.left, window.innerWidth - box.width);
    popup.style.top = Math.max(0, top) + "px";
    popup.style.left = Math.max(0, left) + "px";
  }

  function placeWithin(element) {
    element.querySelectorAll(POPUPS).forEach(place);
  }

  ["mouseover", "focusin"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      const holder = event.target.closest && event.target.closest(".wharf-table-region .wharf-vuln");
      if (holder) placeWithin(holder);
    });
  });
  // A row menu is a <details>: its toggle event does not bubble, so listen while it goes down.
  document.addEventListener("toggle", function (event) {
    if (event.target.matches && event.target.matches(".wharf-table-region .wharf-row-menu")) placeWithin(event.target);
  }, true);
  document.addEventListener("scroll", function () { document.querySelectorAll(POPUPS).forEach(place); }, { capture: true, passive: true });

  // An open row menu closes, as a menu does, on a click elsewhere or on Escape (which returns focus to its button).
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.wharf-row-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const menu = event.target.closest && event.target.closest("details.wharf-row-menu[open]");
    if (!menu) return;
    menu.open = false;
    menu.querySelector("summary").focus();
  });

  document.addEventListener("change", function (event) {
    const all = event.target.closest("[data-select-all]");
    if (!all) return;
    const table = all.closest("table");
    table.querySelectorAll("input[name='" + all.dataset.selectAll + "']").forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
