// A header checkbox with data-select-all="NAME" ticks or clears every
// checkbox named NAME in its form, and shows whether all, some or none are.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.type !== "checkbox" || !box.form) {
    return;
  }
  const name = box.dataset.selectAll || box.name;
  const header = box.form.querySelector(`input[data-select-all="${CSS.escape(name)}"]`);
  if (!header) {
    return;
  }
  const rows = [...box.form.querySelectorAll(`input[type="checkbox"][name="${CSS.escape(name)}"]`)];
  if (box === header) {
    rows.forEach((row) => { row.checked = header.checked; });
  }
  const ticked = rows.filter((row) => row.checked).length;
  header.checked = rows.length > 0 && ticked === rows.length;
  header.indeterminate = ticked > 0 && ticked < rows.length;
});
