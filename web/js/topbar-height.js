// Keeps --topbar-h on <html> equal to the top bar's height (it wraps to more rows on a phone and
// in French), so a view sized "the rest of the screen" fits exactly under it.
export function trackTopbarHeight(bar = document.querySelector('.topbar')) {
  if (!bar) return;
  const set = () => document.documentElement.style.setProperty('--topbar-h', `${Math.ceil(bar.getBoundingClientRect().height)}px`);
  set();
  if (typeof ResizeObserver === 'function') new ResizeObserver(set).observe(bar);
}
