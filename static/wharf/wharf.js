// The few behaviours htmx does not cover: closing a dialog, removing a dialog row, select-all check boxes.
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
    const remove = event.target.closest("[data-remove-row]");
    if (remove) {
      event.preventDefault();
      remove.closest("[data-row]").remove();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeModal();
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
