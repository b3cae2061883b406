// The systemd lab's own checks that need no lab (lab/nspawn.ts).
import test from 'ava';
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
