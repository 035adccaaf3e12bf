// One ARIA live region per page (<div id="live" aria-live="polite">) announcing state changes.
export function announce(text) {
  const region = document.getElementById('live');
  if (!region) return;
  // Clear then set on the next frame so a repeated message is announced again.
  region.textContent = '';
  window.requestAnimationFrame(() => { region.textContent = text; });
}
