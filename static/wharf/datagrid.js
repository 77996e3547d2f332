// Row selection in datagrid tables. A row's check box (data-select-row) belongs to the toolbar's form through its
// form= attribute; a toolbar button of that form says what its action needs (data-needs="one" or "some") and is
// enabled only while the selection fits it, so a user sees at once what they can do instead of being told after
// a click. The select-all box (data-select-all, ticked by wharf.js) shows a partial page selection as mixed.
// Without JavaScript every button stays enabled and the server answers "select at least one".
(function () {
  "use strict";

  function rowBoxes(form) {
    return Array.prototype.filter.call(form.elements, function (element) {
      return element.matches("input[type='checkbox'][data-select-row]");
    });
  }

  function fits(needs, count) {
    if (needs === "one") return count === 1;
    if (needs === "some") return count >= 1;
    return true;
  }

  function refresh(form) {
    const boxes = rowBoxes(form);
    const count = boxes.filter(function (box) { return box.checked; }).length;
    Array.prototype.forEach.call(form.elements, function (element) {
      if (element.dataset.needs) element.disabled = !fits(element.dataset.needs, count);
      if (element.dataset.selectAll !== undefined) {
        element.checked = boxes.length > 0 && count === boxes.length;
        element.indeterminate = count > 0 && count < boxes.length;
      }
    });
    document.querySelectorAll("[data-selection-count='" + form.id + "']").forEach(function (counter) {
      counter.textContent = count ? count + " selected" : "";
    });
  }

  function refreshAll() {
    const forms = new Set();
    document.querySelectorAll("[data-needs], [data-select-row]").forEach(function (element) {
      if (element.form) forms.add(element.form);
    });
    forms.forEach(refresh);
  }

  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!box.form || !(box.matches("[data-select-row]") || box.matches("[data-select-all]"))) return;
    // After wharf.js has ticked the page's rows for a select-all box.
    queueMicrotask(function () { refresh(box.form); });
  });
  // A search, sort or page of the table replaces its rows (and so clears the selection).
  document.addEventListener("htmx:afterSettle", refreshAll);
  // Back/forward restores ticked boxes from the page cache.
  window.addEventListener("pageshow", refreshAll);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refreshAll);
  else refreshAll();
})();
