// What the SSH and SFTP tests share: a real sshd of the file's own (its log in test-artifacts/logs/),
// a connector worker and a user worker on a scratch store (the harness), the management API on the
// same store, and the `connectors` CLI against it, every response recorded for the leak sweep.
import { createWriteStream, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startManagementApi, type RunningManagementApi } from '../../api/server';
import { Keyring } from '../../core/keyring';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { startSshd, type SshdOptions, type TestSshd } from '../../scripts/devstack/sshd';
import { startHarness, type Harness } from './harness';
import { LOG_DIR, recordResponse, recordSecrets } from './leak-sweep';
import { runProcess, type ProcessRun } from './run-process';

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');

/**
 * A line of a private key's text that holds key material: every OpenSSH key of one kind begins with
 * the same first line (`openssh-key-v1`, the cipher and KDF names), so only a later line tells a
 * part of this key apart, for "contains no secret" checks.
 */
export function keyMaterialLine(privateKey: string): string {
  return privateKey.trim().split('\n')[2];
}

export interface SshStack {
  sshd: TestSshd;
  harness: Harness;
  api: RunningManagementApi;
  /** Runs the `connectors` CLI on the harness's store, with its keyring. */
  cli(args: string[], input?: string): Promise<ProcessRun>;
  /** Calls the management API with its read-write token; JSON in, JSON (or text) out. */
  apiCall(method: string, route: string, body?: unknown): Promise<{ status: number; text: string; json: unknown }>;
  /** Lines sshd logged from now on, for "what did this connection do" checks. */
  logMark(): () => string[];
  close(): Promise<void>;
}

/** Starts sshd (`label` names its log file), the harness, the API and the CLI's settings. */
export async function startSshStack(label: string, sshdOptions: SshdOptions): Promise<SshStack> {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(path.join(LOG_DIR, `sshd-${label}.log`), { flags: 'w' });
  const sshd = await startSshd({ ...sshdOptions, onLine: (line) => log.write(`${line}\n`) });
  const scratch: ScratchDatabase = await createScratchDatabase(`tc_${label}`);
  const migrating = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
  await migrating.migrate();
  await migrating.close();
  const keyringEntry = Keyring.generateEntry('k1');
  const harness = await startHarness({ databaseUrl: scratch.url, keyring: Keyring.parse(keyringEntry, 'TC_KEYRING') });
  const token = `ssh-api-${randomBytes(12).toString('hex')}`;
  recordSecrets(`the API token of ${label}`, [token, keyringEntry]);
  const api = await startManagementApi({ service: harness.service, runner: createConnectionRunner({ service: harness.service }), tokens: { readWrite: [token], readOnly: [] }, port: 0 });

  return {
    sshd,
    harness,
    api,
    cli: (args, input) =>
      runProcess(process.execPath, [BIN, ...args], {
        env: { ...process.env, DATABASE_URL: scratch.url, TC_KEYRING: keyringEntry, TC_KEYRING_FILE: '', VAULT_ADDR: '' },
        timeoutMs: 60_000,
        input,
        label: `connectors ${args[0]} (${label})`,
      }),
    async apiCall(method, route, body) {
      const res = await fetch(`${api.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      recordResponse(`management API ${method} ${route} (${label})`, text);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, text, json };
    },
    logMark() {
      const from = sshd.logLines().length;
      return () => sshd.logLines().slice(from);
    },
    async close() {
      await api.close();
      // Stops the workers, which close the connector types' pools and the service.
      await harness.shutdown();
      await scratch.drop();
      await sshd.stop();
      log.end();
    },
  };
}
