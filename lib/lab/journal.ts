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

/** systemd's catalog ids of the job messages PID 1 writes (systemd/sd-messages.h). */
const UNIT_STARTED = '39f53479d3a045ac8e11786248231fbf';
const UNIT_STOPPED = '9d1aaa27d60140bd96365438aad20286';
const UNIT_FAILED = 'd9b373ed55a64feb8242e02dbe79a49c';

/**
 * The same events read from a real journal (`journalctl -o json _PID=1`): "Started X." is a start, or a restart when
 * its job was one (JOB_TYPE=restart); "Stopped X." of a stop job a stop (the stop half of a restart is not an event of
 * its own); "X: Failed with result …" a failure. pid: 0 (systemd's message names no PID; `lab.services` has them).
 */
export function parseSystemdJournal(jsonLines: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const line of jsonLines.split('\n')) {
    if (!line.startsWith('{')) continue;
    let e: Record<string, string>;
    try {
      e = JSON.parse(line) as Record<string, string>;
    } catch {
      continue;
    }
    const unit = String(e.UNIT ?? '').replace(/\.service$/, '');
    if (!unit || String(e.UNIT).includes('@') || !String(e.UNIT).endsWith('.service')) continue;
    const time = new Date(Number(e.__REALTIME_TIMESTAMP) / 1000).toISOString();
    const id = e.MESSAGE_ID;
    let event: JournalEvent | undefined;
    if (id === UNIT_STARTED) event = e.JOB_TYPE === 'restart' ? 'restart' : 'start';
    else if (id === UNIT_STOPPED && e.JOB_TYPE === 'stop') event = 'stop';
    else if (id === UNIT_FAILED) event = 'failed';
    if (event) out.push({ time, unit, event, pid: 0 });
  }
  return out;
}
