/** Plain-text tables for summaries (kubeadm's `certs check-expiration` look): padded columns, no borders. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** 2027-11-28 (UTC date only: the time of day is noise in an expiry report). */
export const day = (d: Date) => d.toISOString().slice(0, 10);
