// Where to go after signing in: `?next=` is honoured only when it resolves to this page's own
// origin. Resolve with the browser's URL parser (the one navigation uses), then compare origins:
// string checks miss what parsers accept ("/\evil.example", tabs, "http:evil.example").
export function safeNextPath(raw, origin) {
  if (typeof raw !== 'string' || raw === '') return '/';
  let target;
  try {
    target = new URL(raw, origin);
  } catch {
    return '/';
  }
  if (target.origin !== origin) return '/';
  return target.pathname + target.search + target.hash;
}
