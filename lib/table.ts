/** Plain-text tables for summaries (kubeadm's `certs check-expiration` look): padded columns, no borders. */
export function table(header: string[], rows: string[][], fit?: Fit): string {
  return fitTable(header, rows, fit).text;
}

/**
 * How a table is made to fit a terminal (status.ts: under 120 columns).
 * - `width`: the widest a line may be.
 * - `cut`: the columns that may be cut to fit, with `…` in the middle: the start and the end of a name (`kubelet-` and
 *   `node-01.crt`, a host's `production-` and `-07`) are what tells it apart, so the middle goes.
 * - `last`: the room kept for the last column. Its cells are never cut (a status's reason is what one acts on): a
 *   longer one runs past `width`.
 */
export interface Fit { width: number; cut: number[]; last: number }

const MIN_CUT = 14; // a cut cell keeps at least 6 characters either side of the `…` (and `front-proxy-ca` whole)

/** A name cut to `w` characters with `…` in the middle; as is when it fits. */
export function ellipsize(s: string, w: number): string {
  if (s.length <= w) return s;
  const head = Math.ceil((w - 1) / 2);
  return `${s.slice(0, head)}…${s.slice(s.length - (w - 1 - head))}`;
}

/** The table, and whether any cell was cut (the caller then says where the full names are). */
export function fitTable(header: string[], rows: string[][], fit?: Fit): { text: string; cut: boolean } {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  let cells = rows;
  let cut = false;
  if (fit) {
    const last = header.length - 1;
    const total = () => widths.slice(0, last).reduce((a, b) => a + b + 2, 0) + Math.min(widths[last], fit.last);
    const floor = (i: number) => Math.max(header[i].length, MIN_CUT);
    // narrow the widest column that may still give room, one character at a time
    for (let over = total() - fit.width; over > 0; over--) {
      const i = fit.cut.filter((c) => widths[c] > floor(c)).sort((a, b) => widths[b] - widths[a])[0];
      if (i === undefined) break;
      widths[i]--;
    }
    // two names cut to the same text would no longer tell their rows apart: such a column gets its room back until they
    // differ (the line may then pass `width`, only for names that differ in their middle alone)
    for (const i of fit.cut) {
      const full = [...new Set(rows.map((r) => r[i] ?? ''))];
      while (new Set(full.map((s) => ellipsize(s, widths[i]))).size < full.length) widths[i]++;
    }
    cells = rows.map((r) => r.map((c, i) => (fit.cut.includes(i) ? ellipsize(c ?? '', widths[i]) : c)));
    cut = cells.some((r, n) => r.some((c, i) => c !== rows[n][i]));
  }
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  ').trimEnd();
  return { text: [line(header), ...cells.map(line)].join('\n'), cut };
}

/** 2027-11-28 (UTC date only: the time of day is noise in an expiry report). */
export const day = (d: Date) => d.toISOString().slice(0, 10);
