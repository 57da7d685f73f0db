/**
 * Aho-Corasick over normalised UTF-16 units, compiled to flat typed arrays. Each state knows the first
 * state on its suffix chain that ends a pattern (`report`), so a pattern that is a proper suffix of an
 * unfinished longer one (第一 inside 全国第一名) is still reported: the bug that makes mint-filter miss
 * terms (see shared/compliance-notes.md).
 *
 * Units that occur in no pattern map to symbol 0 and send the automaton straight back to the root, so
 * ordinary text costs one table read per unit. The root has a dense row; other states keep their
 * children sorted in a flat array and are scanned linearly (most have one child).
 */

export interface Automaton {
  /** Normalised unit -> symbol (0: in no pattern). */
  symbol: Uint16Array;
  /** Root transitions by symbol (0: stay at the root). */
  root: Int32Array;
  childStart: Int32Array;
  childEnd: Int32Array;
  childSymbol: Uint16Array;
  childState: Int32Array;
  fail: Int32Array;
  /** Pattern ending at this state, or -1. */
  pattern: Int32Array;
  /** The state itself if it ends a pattern, else the nearest state on its suffix chain that does, or -1. */
  report: Int32Array;
  /** The next state after `report[s]` on the suffix chain that ends a pattern, or -1. */
  nextReport: Int32Array;
  /** Pattern length in units. */
  lengths: Int32Array;
}

/** Compile patterns (arrays of normalised units, each distinct and non-empty). Pattern i is reported as i. */
export function buildAutomaton(patterns: readonly (readonly number[])[]): Automaton {
  const symbol = new Uint16Array(0x10000);
  let symbols = 0;
  for (const p of patterns) for (const u of p) if (symbol[u] === 0) symbol[u] = ++symbols;
  if (symbols > 0xfffe) throw new Error("too many distinct characters in the term list");

  // Trie with Map children while building.
  const kids: Map<number, number>[] = [new Map()];
  const patternAt: number[] = [-1];
  patterns.forEach((p, i) => {
    let s = 0;
    for (const u of p) {
      const a = symbol[u]!;
      let t = kids[s]!.get(a);
      if (t === undefined) {
        t = kids.push(new Map()) - 1;
        patternAt.push(-1);
        kids[s]!.set(a, t);
      }
      s = t;
    }
    patternAt[s] = i;
  });
  const states = kids.length;

  const root = new Int32Array(symbols + 1);
  for (const [a, t] of kids[0]!) root[a] = t;
  const childStart = new Int32Array(states);
  const childEnd = new Int32Array(states);
  const childSymbol = new Uint16Array(states);
  const childState = new Int32Array(states);
  let at = 0;
  for (let s = 0; s < states; s++) {
    childStart[s] = at;
    for (const [a, t] of [...kids[s]!].sort((x, y) => x[0] - y[0])) {
      childSymbol[at] = a;
      childState[at++] = t;
    }
    childEnd[s] = at;
  }

  const fail = new Int32Array(states);
  const report = new Int32Array(states).fill(-1);
  const nextReport = new Int32Array(states).fill(-1);
  const pattern = Int32Array.from(patternAt);
  const step = (s: number, a: number): number => {
    for (;;) {
      if (s === 0) return root[a]!;
      const t = kids[s]!.get(a);
      if (t !== undefined) return t;
      s = fail[s]!;
    }
  };
  // Breadth-first, so a state's fail target is final before the state is used.
  const queue: number[] = [];
  for (const t of kids[0]!.values()) queue.push(t);
  for (let q = 0; q < queue.length; q++) {
    const s = queue[q]!;
    const f = fail[s]!;
    const inherited = report[f]!;
    report[s] = pattern[s]! >= 0 ? s : inherited;
    nextReport[s] = pattern[s]! >= 0 ? inherited : nextReport[f]!;
    for (const [a, t] of kids[s]!) {
      fail[t] = step(f, a);
      queue.push(t);
    }
  }
  const lengths = Int32Array.from(patterns, (p) => p.length);
  return { symbol, root, childStart, childEnd, childSymbol, childState, fail, pattern, report, nextReport, lengths };
}

/**
 * Run over `codes[0..length)` and call `hit(pattern, end)` (end exclusive, in units) for every pattern
 * occurrence, longest first at each end position.
 */
export function scan(ac: Automaton, codes: Uint16Array, length: number, hit: (pattern: number, end: number) => void): void {
  const { symbol, root, childStart, childEnd, childSymbol, childState, fail, pattern, report, nextReport } = ac;
  let s = 0;
  for (let j = 0; j < length; j++) {
    const a = symbol[codes[j]!]!;
    if (a === 0) {
      s = 0;
      continue;
    }
    for (;;) {
      if (s === 0) {
        s = root[a]!;
        break;
      }
      let t = -1;
      for (let k = childStart[s]!, e = childEnd[s]!; k < e; k++) {
        if (childSymbol[k] === a) {
          t = childState[k]!;
          break;
        }
      }
      if (t >= 0) {
        s = t;
        break;
      }
      s = fail[s]!;
    }
    let r = report[s]!;
    while (r >= 0) {
      hit(pattern[r]!, j + 1);
      r = nextReport[r]!;
    }
  }
}
