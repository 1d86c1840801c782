// CloudWatch Logs' JSON filter syntax, for the terms the stack's metric filters use: ($.field = "text") and
// ($.field = number), joined by &&, with or without the parentheses; and a metric filter's dimension values.

export function matchesFilter(pattern: string, event: Record<string, unknown>): boolean {
  const m = /^\{\s*(.*)\s*\}$/.exec(pattern.trim());
  if (!m) throw new Error(`not a JSON filter pattern: ${pattern}`);
  return m[1]!.split('&&').every((term) => {
    const t = /^\s*(\()?\s*\$\.([A-Za-z0-9_.]+)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*(\))?\s*$/.exec(term);
    if (!t || Boolean(t[1]) !== Boolean(t[4])) throw new Error(`unsupported term in the filter: ${term}`);
    const value = fieldOf(event, `$.${t[2]!}`);
    return t[3]!.startsWith('"') ? value === JSON.parse(t[3]!) : typeof value === 'number' && value === Number(t[3]);
  });
}

/** The value a metric filter's `$.a.b` selector reads from a log event. */
export function fieldOf(event: Record<string, unknown>, selector: string): unknown {
  if (!selector.startsWith('$.')) throw new Error(`not a field selector: ${selector}`);
  return selector
    .slice(2)
    .split('.')
    .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], event);
}
