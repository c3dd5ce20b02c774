// The console's only script: "select all" checkboxes and the periodic refresh of live pages.
// Everything works without it; it is served from the package (no CDN, works offline).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("input[data-select-all]")) {
    box.addEventListener("change", () => {
      const name = box.getAttribute("data-select-all");
      for (const other of document.querySelectorAll(`input[name="${name}"]`)) {
        other.checked = box.checked;
      }
    });
  }
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    const seconds = Number(refresh.getAttribute("data-refresh"));
    setTimeout(() => window.location.reload(), seconds * 1000);
  }
});
