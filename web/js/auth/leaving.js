// "This is a shared computer": when the session was opened with that choice, leaving the page
// (closing the tab, navigating away, signing out, idle timeout) clears this site's storage, so
// the next person finds nothing of ours (the server also sends Clear-Site-Data on sign-out).
export function clearSiteStorage() {
  try { localStorage.clear(); } catch { /* storage may be unavailable */ }
  try { sessionStorage.clear(); } catch { /* idem */ }
}

export function leaveNothingBehind(me) {
  if (!me || !me.shared_computer) return;
  window.addEventListener('pagehide', clearSiteStorage);
}
