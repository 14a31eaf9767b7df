// A button with data-copy="#field" copies that field's value and says so for
// two seconds: on the button, and to screen readers through the element named
// by data-copy-status (aria-live). Where the Clipboard API is missing
// (plain http off localhost), it selects the text and copies that instead.
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy]");
  if (!button) {
    return;
  }
  const field = document.querySelector(button.dataset.copy);
  if (!field) {
    return;
  }
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    field.select();
    copied = document.execCommand("copy");
  }
  const said = copied ? "Copied" : "Select the link and copy it";
  const status = document.getElementById(button.dataset.copyStatus || "");
  if (status) {
    status.textContent = copied ? "Link copied to the clipboard." : said;
  }
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = said;
  setTimeout(() => {
    button.textContent = label;
    if (status) {
      status.textContent = "";
    }
  }, 2000);
});
