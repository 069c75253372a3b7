// Strict options: a misspelled key (`maxTokenz`, `contextSzie`) would otherwise be ignored in
// silence and the default used. Every public options object is checked against its known keys
// once, where it is resolved. The key lists are objects typed `Record<keyof Options, true>`, so
// the compiler fails when an options interface gains or loses a key that its list does not.

/** The known keys of an options interface T: write `{ a: true, b: true } satisfies KeysOf<T>`. */
export type KeysOf<T> = { readonly [K in keyof Required<T>]: true };

/**
 * Throws a TypeError naming an unknown key of `options`, the nearest known key when it is close
 * (a typo), and the known keys. `what` names the options object (e.g. 'generate options').
 */
export function checkOptionKeys(what: string, options: unknown, known: KeysOf<object> | Readonly<Record<string, true>>): void {
  if (options === undefined || options === null || typeof options !== 'object') return; // the caller's type check reports these
  const names = Object.keys(known);
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    throw new TypeError(`${what}: unknown option "${key}"${nearestHint(key, names)}; known options: ${names.join(', ')}`);
  }
}

/** ` (did you mean "x"?)` for the nearest of `names` when it is within a typo's distance, else ''. */
export function nearestHint(key: string, names: readonly string[]): string {
  let best = '';
  let bestDistance = Infinity;
  for (const n of names) {
    const d = editDistance(key.toLowerCase(), n.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = n;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}
