// What a lab host's real journal says of its units: one event per start, restart, stop or failure, and each restart
// systemd schedules on its own (Restart=on-failure: 'scheduled', then the start it makes).
export type JournalEvent = 'start' | 'stop' | 'restart' | 'failed' | 'scheduled';
export interface JournalLine {
  time: string;
  unit: string;
  event: JournalEvent;
  pid: number;
}

/** systemd's catalog ids of the job messages PID 1 writes (systemd/sd-messages.h). */
const UNIT_STARTED = '39f53479d3a045ac8e11786248231fbf';
const UNIT_STOPPED = '9d1aaa27d60140bd96365438aad20286';
const UNIT_RESTART_SCHEDULED = '5eb03494b6584870a536b337290809b3';
const UNIT_FAILED = 'd9b373ed55a64feb8242e02dbe79a49c';
const UNIT_STOPPING = 'de5b426a63be47a7b6ac3eaac82e2f6f';

/** The entries of `journalctl -o json` output (one JSON object a line; other lines skipped), each with its time. */
function entries(jsonLines: string): { e: Record<string, string>; time: string }[] {
  const out: { e: Record<string, string>; time: string }[] = [];
  for (const line of jsonLines.split('\n')) {
    if (!line.startsWith('{')) continue;
    let e: Record<string, string>;
    try { e = JSON.parse(line) as Record<string, string>; } catch { continue; }
    out.push({ e, time: new Date(Number(e.__REALTIME_TIMESTAMP) / 1000).toISOString() });
  }
  return out;
}

/**
 * When a unit was down, from the real journal: from each "Stopping X..." to the next "Started X." (a restart is both),
 * or to `now` when it has not started again. The HA tests check that no two masters' windows overlap.
 */
export function downWindows(jsonLines: string, unit: string, now = new Date()): { from: string; to: string }[] {
  const out: { from: string; to: string }[] = [];
  let open: string | undefined;
  for (const { e, time } of entries(jsonLines)) {
    if (e.UNIT !== `${unit}.service`) continue;
    if (e.MESSAGE_ID === UNIT_STOPPING && open === undefined) open = time;
    else if (e.MESSAGE_ID === UNIT_STARTED && open !== undefined) { out.push({ from: open, to: time }); open = undefined; }
  }
  if (open !== undefined) out.push({ from: open, to: now.toISOString() });
  return out;
}

/**
 * When a restart job stopped a unit, from the real journal ("Stopped X." with JOB_TYPE=restart): systemd writes it
 * whether the unit was up or still starting (a "Stopping X..." line comes only in the first case), so it counts the
 * restarts that began after a time even when a start job begun before that time finishes after it.
 */
export function restartStops(jsonLines: string, unit: string): string[] {
  return entries(jsonLines).filter(({ e }) => e.UNIT === `${unit}.service` && e.MESSAGE_ID === UNIT_STOPPED && e.JOB_TYPE === 'restart')
    .map(({ time }) => time);
}

/**
 * The events read from a real journal (`journalctl -o json _PID=1`): "Started X." is a start, or a restart when
 * its job was one (JOB_TYPE=restart); "Stopped X." of a stop job a stop (the stop half of a restart is not an event of
 * its own); "X: Failed with result …" a failure. pid: 0 (systemd's message names no PID; `lab.services` has them).
 */
export function parseSystemdJournal(jsonLines: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const { e, time } of entries(jsonLines)) {
    const unit = String(e.UNIT ?? '').replace(/\.service$/, '');
    if (!unit || String(e.UNIT).includes('@') || !String(e.UNIT).endsWith('.service')) continue;
    const id = e.MESSAGE_ID;
    let event: JournalEvent | undefined;
    if (id === UNIT_STARTED) event = e.JOB_TYPE === 'restart' ? 'restart' : 'start';
    else if (id === UNIT_STOPPED && e.JOB_TYPE === 'stop') event = 'stop';
    else if (id === UNIT_FAILED) event = 'failed';
    else if (id === UNIT_RESTART_SCHEDULED) event = 'scheduled';
    if (event) out.push({ time, unit, event, pid: 0 });
  }
  return out;
}
