// Filter forms (class "filters") submit with Enter from any of their fields. Browsers do it from text and date
// fields only; a keyboard user on a <select> would otherwise have to Tab to the button.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (field.tagName !== "SELECT" || !field.form || !field.form.classList.contains("filters")) return;
    event.preventDefault();
    if (field.form.requestSubmit) field.form.requestSubmit();
    else field.form.submit();
  });
})();
