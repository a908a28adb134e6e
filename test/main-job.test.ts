import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

// The README's first command, as a user runs it, on embedded defaults in a fresh data folder.
describe('npm start (the main job)', () => {
  test('runs the example workflow through stored, overridden, inline and parallel connections and prints the Web UI', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'tc-start-'));
    try {
      const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn('npm', ['start', '--', '--once'], {
          cwd: path.resolve(__dirname, '..'),
          env: { ...process.env, TC_DATA_DIR: dataDir, DATABASE_URL: '', TC_KEYRING: '', TC_KEYRING_FILE: '', TC_API_TOKENS: '', TC_API_READ_TOKENS: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (c) => (output += c));
        child.stderr.on('data', (c) => (output += c));
        child.on('close', (code) => resolve({ code, output }));
      });
      expect(output).toContain('example workflow completed');
      expect(code).toBe(0);
      expect(output).toContain('"stored": "1 invoice(s)"');
      expect(output).toContain('"overridden": "created invoice 2 (HTTP 201)"');
      expect(output).toContain('"inline": "health ok: true"');
      expect(output).toMatch(/"acme": 1,\s+"globex": 1/);
      // Nothing a newcomer has to puzzle over: no SDK warning. Both streams are captured in full: the SDK's
      // "[WARN] No activities registered" line showed up here before the example worker's logger dropped it.
      expect(output).toContain('[start] running workflow');
      expect(output).not.toMatch(/\[WARN\]/);
      expect(output).not.toContain('No activities registered');
      expect(output).toMatch(/This run: +http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/billing-demo-/);
      // The connector console, with a token made for this run: printed for the terminal, never inside a URL.
      const consoleLine = /Connector console: (http:\/\/127\.0\.0\.1:\d+)\/ {2}\(sign in with token ([0-9a-f]{48})\)/.exec(output);
      expect(consoleLine).not.toBeNull();
      expect(output.match(new RegExp(consoleLine![2], 'g'))).toHaveLength(1);
      // The embedded store and its key file were made in the data folder; the key file is private.
      expect(statSync(path.join(dataDir, 'store')).isDirectory()).toBe(true);
      expect(statSync(path.join(dataDir, 'keyring')).mode & 0o077).toBe(0);
      // The connector's token is stored encrypted, shown masked, and never printed.
      expect(output).toContain('"token":"********"');
      expect(readFileSync(path.join(dataDir, 'keyring'), 'utf8')).toMatch(/^local1:/m);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});
