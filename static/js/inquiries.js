// Ctrl+Enter (⌘+Enter) in an inquiry box saves it: the hands stay on the keyboard.
// A static file, not an inline script, so the Content-Security-Policy allows it.
document.getElementById("inquiries")?.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.form) {
    e.preventDefault();
    e.target.form.requestSubmit();
  }
});
