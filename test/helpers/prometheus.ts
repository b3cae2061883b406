/** Real consumers of the Prometheus textfile: promtool's linter, and node_exporter's textfile collector on loopback. */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** `promtool check metrics` on the text: its exit code and whatever it said (empty when the text is clean). */
export async function promtool(text: string): Promise<{ code: number; said: string }> {
  const r = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
  return { code: r.exitCode ?? -1, said: `${r.stdout}${r.stderr}`.trim() };
}

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address() as net.AddressInfo; s.close(() => resolve(port)); });
  s.on('error', reject);
});

/**
 * Serve the text through Debian's prometheus-node-exporter (textfile collector only, 127.0.0.1) and scrape it once:
 * node_textfile_scrape_error (1 when it could not parse the file), the errors it logged while gathering (a duplicate
 * series is logged there, and the scrape still answers 200) and the scraped page. Bounded: 10 s to come up.
 */
export async function nodeExporterScrape(text: string): Promise<{ scrapeError: number; gatherErrors: string[]; body: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubetls-textfile-'));
  writeFileSync(path.join(dir, 'kubetls.prom'), text);
  const port = await freePort();
  const exporter = execa('prometheus-node-exporter', ['--collector.disable-defaults', '--collector.textfile',
    `--collector.textfile.directory=${dir}`, `--web.listen-address=127.0.0.1:${port}`], { reject: false, all: true });
  try {
    for (let i = 0; i < 100; i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        const body = await res.text();
        const m = /^node_textfile_scrape_error (\d+)$/m.exec(body);
        if (m) {
          exporter.kill();
          const said = (await exporter).all ?? '';
          return { scrapeError: Number(m[1]), gatherErrors: said.split('\n').filter((l) => /level=error/.test(l)), body };
        }
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`node_exporter did not answer on 127.0.0.1:${port}`);
  } finally {
    exporter.kill();
    await exporter;
    rmSync(dir, { recursive: true, force: true });
  }
}
