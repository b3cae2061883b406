// The systemd lab's own checks that need no lab (lab/nspawn.ts, lab/journal.ts).
import test from 'ava';
import { downWindows, parseSystemdJournal, restartStops } from '../lab/journal.ts';
import { inotifyTooLow, nodeIpOf, sandboxUnitFiles } from '../lab/nspawn.ts';

test('systemd hosts are refused with the sysctl to run when the inotify limits are Debian\'s defaults, and allowed at kind\'s values', (t) => {
  const limits = (v: Record<string, string>) => (k: string) => v[k]!;
  t.is(inotifyTooLow(limits({ max_user_instances: '128', max_user_watches: '524288' })),
    'lab: fs.inotify.max_user_instances is 128, systemd hosts need 8192 (each host\'s systemd and kubelet take inotify instances): run sysctl -w fs.inotify.max_user_instances=8192 first');
  t.regex(inotifyTooLow(limits({ max_user_instances: '8192', max_user_watches: '8192' })) ?? 'allowed', /fs\.inotify\.max_user_watches is 8192, .* sysctl -w fs\.inotify\.max_user_watches=524288 first$/);
  t.is(inotifyTooLow(limits({ max_user_instances: '8192', max_user_watches: '524288' })), undefined);
  t.is(inotifyTooLow(limits({ max_user_instances: '65536', max_user_watches: '1048576' })), undefined);
});

test('a minion\'s node address is in TEST-NET-2 (never a reachable network) and the lab\'s kubelet drop-in leaves kubetls\'s variables alone', (t) => {
  t.is(nodeIpOf('127.126.0.2'), '198.51.100.2');
  const files = sandboxUnitFiles();
  const dropIn = files['kubelet.service.d/10-lab-sandbox.conf']!;
  t.regex(dropIn, /^Environment="KUBELET_SANDBOX_ARGS=--fail-cgroupv1=false /m);
  t.notRegex(dropIn, /KUBELET_ARGS=|ExecStart=/, 'the lab never overrides what kubetls writes');
  // the sysctls are shown to the kubelet inside the container only: bind mounts, never a write to /proc/sys
  const unit = files['kubetls-lab-sandbox.service']!;
  t.regex(unit, /mount --bind \/run\/kubetls-lab\/sysctl\/kernel\.panic \/proc\/sys\/kernel\/panic/);
  t.notRegex(unit, /> *\/proc\/sys|sysctl -w/);
});

test('the journal reader counts a restart job\'s "Stopped" as one restart, whether the unit was up or still starting, and nothing else', (t) => {
  // the fields systemd's PID 1 writes (journalctl -o json), with the catalog ids of sd-messages.h
  const at = (s: number) => String(Date.UTC(2026, 11, 7, 12, 0, s) * 1000);
  const STOPPING = 'de5b426a63be47a7b6ac3eaac82e2f6f', STOPPED = '9d1aaa27d60140bd96365438aad20286', STARTED = '39f53479d3a045ac8e11786248231fbf';
  const line = (s: number, unit: string, id: string, job: string) => JSON.stringify({ __REALTIME_TIMESTAMP: at(s), UNIT: unit, MESSAGE_ID: id, JOB_TYPE: job });
  const journal = [
    '-- No entries --',
    line(1, 'etcd.service', STOPPING, 'restart'), line(2, 'etcd.service', STOPPED, 'restart'), line(3, 'etcd.service', STARTED, 'restart'),
    // a restart merged into a start job still running: no "Stopping", a "Stopped" of the restart job
    line(10, 'etcd.service', STOPPED, 'restart'), line(12, 'etcd.service', STARTED, 'restart'),
    line(20, 'etcd.service', STOPPED, 'stop'), // a stop is no restart
    line(21, 'kube-apiserver.service', STOPPED, 'restart'), // another unit
    '{ not json',
  ].join('\n');
  t.deepEqual(restartStops(journal, 'etcd'), ['2026-12-07T12:00:02.000Z', '2026-12-07T12:00:10.000Z']);
  t.deepEqual(restartStops(journal, 'kube-apiserver'), ['2026-12-07T12:00:21.000Z']);
  t.deepEqual(restartStops(journal, 'kubelet'), []);
  // the same reader feeds the down windows and the events
  t.deepEqual(downWindows(journal, 'etcd'), [{ from: '2026-12-07T12:00:01.000Z', to: '2026-12-07T12:00:03.000Z' }]);
  t.deepEqual(parseSystemdJournal(journal).map((e) => `${e.unit} ${e.event}`), ['etcd restart', 'etcd restart', 'etcd stop']);
});
