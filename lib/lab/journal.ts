// The per-host journal the systemctl stand-in appends to: one line per event.
//   2024-05-01T10:00:00.000Z kube-apiserver restart 1234
export type JournalEvent = 'start' | 'stop' | 'restart' | 'failed';
export interface JournalLine {
  time: string;
  unit: string;
  event: JournalEvent;
  pid: number;
}

export function formatJournalLine(unit: string, event: JournalEvent, pid: number, time = new Date()): string {
  return `${time.toISOString()} ${unit} ${event} ${pid}\n`;
}

export function parseJournal(text: string): JournalLine[] {
  const lines: JournalLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+) (start|stop|restart|failed) (\d+)$/.exec(line.trim());
    if (m) lines.push({ time: m[1]!, unit: m[2]!, event: m[3] as JournalEvent, pid: Number(m[4]) });
  }
  return lines;
}
