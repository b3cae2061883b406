import test from 'ava';
import fc from 'fast-check';
import { getVar, quoteValue, setVar, setVars, setVarsBuffer } from '../lib/envfile.ts';

const distro = `###
# kubernetes system config
#
# The following values are used to configure the kube-apiserver
#

# The address on the local server to listen to.
KUBE_API_ADDRESS="--insecure-bind-address=127.0.0.1"

# Add your own!
KUBE_API_ARGS=""
`;

test('setting a variable replaces only its line and keeps every comment and other variable', (t) => {
  const { text, changed } = setVar(distro, 'KUBE_API_ARGS', '--client-ca-file=/srv/kubernetes/ca.crt --secure-port=6443');
  t.true(changed);
  t.is(text, distro.replace('KUBE_API_ARGS=""', 'KUBE_API_ARGS="--client-ca-file=/srv/kubernetes/ca.crt --secure-port=6443"'));
});

test('setting a variable to the value it has changes nothing', (t) => {
  const once = setVar(distro, 'KUBE_API_ARGS', '--a=1').text;
  t.deepEqual(setVar(once, 'KUBE_API_ARGS', '--a=1'), { text: once, changed: false });
});

test('a missing variable is appended, and a missing file becomes one line', (t) => {
  t.is(setVar(distro, 'KUBE_MASTER', '--master=https://kubemaster:6443').text, `${distro}KUBE_MASTER="--master=https://kubemaster:6443"\n`);
  t.is(setVar('', 'KUBE_PROXY_ARGS', '--kubeconfig=/var/lib/kubelet/kubeconfig').text, 'KUBE_PROXY_ARGS="--kubeconfig=/var/lib/kubelet/kubeconfig"\n');
  t.is(setVar('A=1', 'B', 'x').text, 'A=1\nB="x"\n');
});

test('the recipe\'s multi-line value is replaced as a whole', (t) => {
  const recipe = `# before\nKUBE_API_ARGS="--kubelet-https=true\n--client-ca-file=/srv/kubernetes/ca.crt\n--token-auth-file=/srv/kubernetes/tokens.csv"\n# after\nOTHER="1"\n`;
  const { text } = setVar(recipe, 'KUBE_API_ARGS', '--x=1');
  t.is(text, '# before\nKUBE_API_ARGS="--x=1"\n# after\nOTHER="1"\n');
  t.is(getVar(recipe, 'KUBE_API_ARGS'), '--kubelet-https=true --client-ca-file=/srv/kubernetes/ca.crt --token-auth-file=/srv/kubernetes/tokens.csv');
});

test('commented-out assignments are left alone and values are quoted for systemd', (t) => {
  const text = '#KUBELET_ARGS="--old"\nKUBELET_ARGS=\'--older\'\n';
  t.is(setVar(text, 'KUBELET_ARGS', 'a "b" $c').text, '#KUBELET_ARGS="--old"\nKUBELET_ARGS="a \\"b\\" \\$c"\n');
  t.is(getVar(setVar(text, 'KUBELET_ARGS', 'a "b" $c').text, 'KUBELET_ARGS'), 'a "b" $c');
  t.is(quoteValue(''), '""');
});

test('several variables are set in one pass, in order', (t) => {
  const r = setVars('', { KUBELET_API_SERVER: '', KUBELET_ARGS: '--register-node=true' });
  t.is(r.text, 'KUBELET_API_SERVER=""\nKUBELET_ARGS="--register-node=true"\n');
});

test('a CRLF file gets our line replaced in place with its CRLF ending, no duplicate appended, and a second run changes nothing', (t) => {
  const crlf = '# distro\r\nKUBE_API_ADDRESS="--insecure-bind-address=127.0.0.1"\r\nKUBE_API_ARGS=""\r\nKUBE_OTHER="x"\r\n';
  const once = setVarsBuffer(Buffer.from(crlf), { KUBE_API_ARGS: '--a=1', KUBE_NEW: 'n' });
  t.is(once.bytes.toString('latin1'), '# distro\r\nKUBE_API_ADDRESS="--insecure-bind-address=127.0.0.1"\r\nKUBE_API_ARGS="--a=1"\r\nKUBE_OTHER="x"\r\nKUBE_NEW="n"\r\n');
  t.true(once.changed);
  t.deepEqual(setVarsBuffer(once.bytes, { KUBE_API_ARGS: '--a=1', KUBE_NEW: 'n' }), { bytes: once.bytes, changed: false });
  t.is(getVar(once.bytes, 'KUBE_API_ARGS'), '--a=1');
});

test('a backslash-continued value is replaced as a whole logical line, leaving no orphan line', (t) => {
  const text = 'A="1"\nKUBE_API_ARGS=--kubelet-https=true \\\n  --client-ca-file=/srv/kubernetes/ca.crt \\\n  --secure-port=6443\nB="2"\n';
  t.is(getVar(text, 'KUBE_API_ARGS'), '--kubelet-https=true   --client-ca-file=/srv/kubernetes/ca.crt   --secure-port=6443');
  const { text: out } = setVar(text, 'KUBE_API_ARGS', '--x=1');
  t.is(out, 'A="1"\nKUBE_API_ARGS="--x=1"\nB="2"\n');
  t.is(getVar(out, 'B'), '2');
  // inside double quotes too
  t.is(setVar('KUBE_API_ARGS="--a \\\n--b"\nB=2\n', 'KUBE_API_ARGS', '--x').text, 'KUBE_API_ARGS="--x"\nB=2\n');
});

test('an inline comment on our line is kept as a comment line of its own above it, because systemd would read it as part of the value', (t) => {
  const text = 'KUBE_API_ARGS="--old" # set by ops, ticket 42\nB="2"\n';
  t.is(getVar(text, 'KUBE_API_ARGS'), '--old# set by ops, ticket 42'); // what systemd itself reads there
  const once = setVar(text, 'KUBE_API_ARGS', '--new');
  t.is(once.text, '# set by ops, ticket 42\nKUBE_API_ARGS="--new"\nB="2"\n');
  t.is(getVar(once.text, 'KUBE_API_ARGS'), '--new');
  t.deepEqual(setVar(once.text, 'KUBE_API_ARGS', '--new'), { text: once.text, changed: false });
  // an unquoted value with a note, in a CRLF file
  t.is(setVar('KUBELET_ARGS=--v=2 # debug\r\n', 'KUBELET_ARGS', '--v=0').text, '# debug\r\nKUBELET_ARGS="--v=0"\r\n');
  // a `#` inside quotes, or not after a blank, is value, not a note
  t.is(setVar('A="x # y"\n', 'A', 'z').text, 'A="z"\n');
  t.is(setVar('A=x#y\n', 'A', 'z').text, 'A="z"\n');
});

test('bytes that are not UTF-8 in other lines, NULs and a missing final newline survive byte for byte', (t) => {
  const head = Buffer.from('# caf\xe9 latin1 comment\n', 'latin1');
  const other = Buffer.concat([Buffer.from('KUBE_LABEL="\xff\xfe'), Buffer.from([0, 0x80]), Buffer.from('"\n')].map((b) => Buffer.from(b.toString('latin1'), 'latin1')));
  const before = Buffer.concat([head, Buffer.from('KUBE_API_ARGS=""\n'), other, Buffer.from('TAIL=1', 'latin1')]);
  const { bytes, changed } = setVarsBuffer(before, { KUBE_API_ARGS: '--a=1' });
  t.true(changed);
  t.deepEqual(bytes, Buffer.concat([head, Buffer.from('KUBE_API_ARGS="--a=1"\n'), other, Buffer.from('TAIL=1', 'latin1')]));
  // the string API can no longer carry those bytes; that is why lib/rollout/converge.ts must use setVarsBuffer
  t.notDeepEqual(Buffer.from(setVars(before.toString('utf8'), { KUBE_API_ARGS: '--a=1' }).text), bytes);
  // appended to a file without a final newline: one is added first, in the file's style
  t.deepEqual(setVarsBuffer(Buffer.from('A=1\r\nB=2'), { C: '3' }).bytes.toString('latin1'), 'A=1\r\nB=2\r\nC="3"\r\n');
});

test('any other lines survive byte for byte around our assignment (property)', (t) => {
  // other lines: comments or assignments of other variables, with any bytes but line ends, quotes and backslashes
  const byteLine = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a.filter((b) => b !== 0x0a && b !== 0x0d && b !== 0x22 && b !== 0x27 && b !== 0x5c)));
  const line = fc.oneof(
    byteLine.map((b) => Buffer.concat([Buffer.from('#'), b])),
    fc.tuple(fc.stringMatching(/^[A-Z][A-Z0-9_]{0,8}$/).filter((k) => k !== 'KUBE_API_ARGS'), byteLine).map(([k, b]) => Buffer.concat([Buffer.from(`${k}=`), b])),
  );
  fc.assert(fc.property(fc.array(line, { maxLength: 6 }), fc.array(line, { maxLength: 6 }), fc.constantFrom('\n', '\r\n'), fc.string(),
    (before, after, eol, value) => {
      const join = (ls: Buffer[]) => Buffer.concat(ls.flatMap((l) => [l, Buffer.from(eol)]));
      const file = Buffer.concat([join(before), Buffer.from(`KUBE_API_ARGS="--old"${eol}`), join(after)]);
      const want = Buffer.concat([join(before), Buffer.from(`KUBE_API_ARGS=${quoteValue(value)}${eol}`), join(after)]);
      const got = setVarsBuffer(file, { KUBE_API_ARGS: value }).bytes;
      return got.equals(want) && getVar(got, 'KUBE_API_ARGS') === value.replace(/\r\n|\n|\r/g, ' ');
    }));
  t.pass();
});

// ---- the parser's other rules, each fed the case that needs it (systemd's src/basic/env-file.c) ----------

test('a `;` line is a comment, and `export NAME=` or blanks around the name still assign NAME, so no duplicate is appended', (t) => {
  t.is(setVar(';KUBE_API_ARGS="old"\nKUBE_API_ARGS="a"\n', 'KUBE_API_ARGS', 'x').text, ';KUBE_API_ARGS="old"\nKUBE_API_ARGS="x"\n');
  t.is(getVar(';KUBE_API_ARGS="old"\n', 'KUBE_API_ARGS'), undefined);
  t.is(setVar('export KUBE_API_ARGS="old"\nB=1\n', 'KUBE_API_ARGS', 'x').text, 'KUBE_API_ARGS="x"\nB=1\n');
  t.is(getVar('export\tKUBE_API_ARGS="old"\n', 'KUBE_API_ARGS'), 'old');
  t.is(getVar('export  KUBE_API_ARGS="old"\n', 'KUBE_API_ARGS'), 'old');
  t.is(setVar('  KUBE_API_ARGS = "old"\nB=1\n', 'KUBE_API_ARGS', 'x').text, 'KUBE_API_ARGS="x"\nB=1\n');
  t.is(getVar('\n\t KUBE_API_ARGS = "old"\n', 'KUBE_API_ARGS'), 'old');
  // a comment line ends at its line end, whatever it holds: an `=`, a quote that never closes, a trailing backslash
  for (const c of ['#', ';']) {
    t.is(setVar(`${c} X=it's\nKUBE_API_ARGS="a"\n`, 'KUBE_API_ARGS', 'x').text, `${c} X=it's\nKUBE_API_ARGS="x"\n`, c);
    t.is(getVar(`${c} a=b \\\nKUBE_API_ARGS=1\n`, 'KUBE_API_ARGS'), '1', c);
  }
  // a line without `=` assigns nothing, and the next line is read on its own
  t.is(setVar('KUBE_API_ARGS\nKUBE_API_ARGS=1\n', 'KUBE_API_ARGS', 'x').text, 'KUBE_API_ARGS\nKUBE_API_ARGS="x"\n');
  t.is(getVar('KUBE_API_ARGS\n', 'KUBE_API_ARGS'), undefined);
});

test('of two assignments of a variable the last one is replaced and read, as the last one wins in systemd', (t) => {
  t.is(setVar('A=1\nB=2\nA=3\n', 'A', 'z').text, 'A=1\nB=2\nA="z"\n');
  t.is(getVar('A=1\nB=2\nA=3\n', 'A'), '3');
});

test('a file with CR-only line endings keeps them, around our line and after a line we append', (t) => {
  t.is(setVar('X=1\rA=2\rB=3\r', 'A', 'z').text, 'X=1\rA="z"\rB=3\r');
  t.is(setVar('X=1\rA=2', 'A', 'z').text, 'X=1\rA="z"');
  t.is(setVar('X=1\r', 'A', 'z').text, 'X=1\rA="z"\n'); // ends in a line end: nothing added before our line
  t.is(setVar('X=1\n# c\rA=2\r\n', 'A', 'z').text, 'X=1\n# c\rA="z"\r\n');
});

test('inline notes: a tab also starts one, the first `#` starts it, `#` inside single quotes is value, a continued note becomes one line without its backslash', (t) => {
  t.is(setVar('A=x\t# tabbed\nB=1\n', 'A', 'z').text, '# tabbed\nA="z"\nB=1\n');
  t.is(setVar('A=x # one # two\n', 'A', 'z').text, '# one # two\nA="z"\n');
  t.is(setVar("A='x # y'\n", 'A', 'z').text, 'A="z"\n');
  t.is(setVar("A='x\n # y'\nB=1\n", 'A', 'z').text, 'A="z"\nB=1\n'); // a single-quoted value spans lines
  t.is(setVar('A=x # note \\\n  more\nB=1\n', 'A', 'z').text, '# note    more\nA="z"\nB=1\n');
  t.is(setVar('A=x # "a\\\r\nb"\r\nB=1\r\n', 'A', 'z').text, '# "a b"\r\nA="z"\r\nB=1\r\n'); // continued inside quotes, CRLF
  t.is(setVar('A=x # note \\\\\nB=1\n', 'A', 'z').text, '# note\nA="z"\nB=1\n'); // trailing backslashes and blanks dropped
  t.is(setVar('A=x # note\\', 'A', 'z').text, '# note\nA="z"');
  t.is(setVar('A=x #note\nB=1\n', 'A', 'z').text, '#note\nA="z"\nB=1\n'); // a blank before `#` is what counts, not after
  t.is(setVar('A=x# y\nB=1\n', 'A', 'z').text, 'A="z"\nB=1\n');
  t.is(setVar('X=1\rA=x # n\rB=1\r', 'A', 'z').text, 'X=1\r# n\rA="z"\rB=1\r'); // the note keeps its own line end
});

test('an unterminated quote runs to the end of the file and is replaced whole', (t) => {
  t.is(setVar('A="unterminated\nB=1\n', 'A', 'z').text, 'A="z"');
  t.is(setVar("A='unterminated\nB=1\n", 'A', 'z').text, 'A="z"');
});

test('values are read as systemd reads them: escapes, quotes, and the blanks it drops', (t) => {
  t.is(getVar('A=a\\ b\\"c\\\\d\n', 'A'), 'a b"c\\d'); // outside quotes a backslash takes the next character
  t.is(getVar('A="a\\"b\\\\c\\`d\\$e\\nf"\n', 'A'), 'a"b\\c`d$e\\nf'); // inside: only " \ ` $ are escapes
  t.is(getVar("A='a\\b \"c $d'\n", 'A'), 'a\\b "c $d'); // inside single quotes nothing is
  t.is(getVar('A=  x y  \n', 'A'), 'x y'); // blanks before and after the value
  t.is(getVar('A=\t"x"  y\t\n', 'A'), 'xy'); // blanks after a closing quote
  t.is(getVar("A='x'  \"y\" \t z\n", 'A'), 'xyz');
  t.is(getVar('A=x\\\ny\n', 'A'), 'xy'); // an escaped newline is dropped
  t.is(getVar('A="x\\\ny"\n', 'A'), 'xy');
  t.is(getVar('A=1 \\\n', 'A'), '1 '); // a blank before a backslash is kept
  t.is(getVar('A=x \\ y\n', 'A'), 'x  y');
  t.is(getVar('A=x\\', 'A'), 'x');
  t.is(getVar('A="abc', 'A'), 'abc'); // an unterminated quote ends with the file
  t.is(getVar("A='abc", 'A'), 'abc');
  t.is(getVar('A=\\\n  \nB=1\n', 'A'), ''); // only blanks after a continuation: nothing
  t.is(getVar('A="a\r\nb"\n', 'A'), 'a b');
});

test('values outside ASCII read back the same from a string and from the file\'s bytes', (t) => {
  const text = setVar('B=1\n', 'A', 'café ☃').text;
  t.is(getVar(text, 'A'), 'café ☃');
  t.is(getVar(Buffer.from(text, 'utf8'), 'A'), 'café ☃');
  t.is(setVar(text, 'A', 'café ☃').changed, false);
});

test('a note whose quote runs across a line break becomes one comment line: the next line stays a comment, never an assignment that swallows ours', (t) => {
  const r = setVar('A=x # "see\nB=evil"\nC=1\n', 'A', 'z');
  t.is(getVar(r.text, 'A'), 'z');
  t.is(getVar(r.text, 'C'), '1');
  t.is(getVar(r.text, 'B'), undefined, r.text);
});

test('a backslash at the very end of a file inside an open quote reads as nothing, not as text', (t) => {
  t.is(getVar('A="x\\', 'A'), 'x');
});
