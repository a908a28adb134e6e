import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { ensureConsoleAssets } from '../scripts/build-console';
import { resolveBinary } from '../scripts/devstack/binaries';
import { ensureChromium } from '../scripts/devstack/chromium';
import { MAILPIT_SERVER } from '../scripts/devstack/mailpit';
import { createScratchDatabase, type ScratchDatabase } from '../scripts/devstack/postgres';
import { ensureSshd } from '../scripts/devstack/sshd';
import { startTemporalDevServer, type TemporalDevServer } from '../scripts/devstack/temporal';
import { startVaultDevServer, type VaultDevServer } from '../scripts/devstack/vault';
import { LOG_DIR, resetLeakSweep } from './support/leak-sweep';
import { STACK_ENV } from './support/stack';
import { bundlePrebuiltWorkflows } from './support/workflow-bundles';

/** Handles shared with global-teardown.ts, which jest runs in this same process. */
export interface RunningStack {
  temporal?: TemporalDevServer;
  vault?: VaultDevServer;
  database?: ScratchDatabase;
  /** Folder of the workflow bundles made for this run (see support/workflow-bundles.ts). */
  bundles?: string;
}
declare global {
  var __TC_STACK__: RunningStack | undefined;
}

function logTo(file: string): (line: string) => void {
  mkdirSync(LOG_DIR, { recursive: true });
  const stream = createWriteStream(path.join(LOG_DIR, file), { flags: 'w' });
  return (line) => stream.write(`${line}\n`);
}

/** Starts the real servers once for the whole run; test files share them through environment variables. */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  resetLeakSweep();
  const [temporal, vault, database, chromium, sshd, bundles, consoleAssets, mailpit] = await Promise.allSettled([
    startTemporalDevServer({ onLine: logTo('temporal.log') }),
    startVaultDevServer({ onLine: logTo('vault.log') }),
    createScratchDatabase(),
    ensureChromium(),
    // OpenSSH's server for the SSH and SFTP tests, which start their own sshd; apt-get runs one install at a time.
    ensureSshd(),
    bundlePrebuiltWorkflows(),
    // The connector console's page, built from console/ when missing or older than its sources.
    ensureConsoleAssets(),
    // Only found or built here (about 7 minutes the first time, beside Vault's 25): the SMTP tests
    // start Mailpits of their own, each with its users and certificate, in a second.
    resolveBinary(MAILPIT_SERVER),
  ]);
  const stack: RunningStack = {
    temporal: temporal.status === 'fulfilled' ? temporal.value : undefined,
    vault: vault.status === 'fulfilled' ? vault.value : undefined,
    database: database.status === 'fulfilled' ? database.value : undefined,
    bundles: bundles.status === 'fulfilled' ? bundles.value : undefined,
  };
  globalThis.__TC_STACK__ = stack;
  const failures = [temporal, vault, database, chromium, sshd, bundles, consoleAssets, mailpit].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    await stopStack(stack);
    const message = `The test stack could not start:\n\n${failures.map((f) => (f.reason as Error).message).join('\n\n')}\n`;
    const error = new Error(message);
    error.stack = message; // the reason is the message; a stack trace of the setup code only hides it
    throw error;
  }
  process.env[STACK_ENV.temporalAddress] = stack.temporal!.address;
  process.env[STACK_ENV.temporalUiUrl] = stack.temporal!.uiUrl ?? '';
  process.env[STACK_ENV.vaultAddress] = stack.vault!.address;
  process.env[STACK_ENV.vaultToken] = stack.vault!.rootToken;
  process.env[STACK_ENV.databaseUrl] = stack.database!.url;
  process.env[STACK_ENV.chromiumPath] = (chromium as PromiseFulfilledResult<string>).value;
  process.stderr.write(
    `\n[devstack] ready in ${((Date.now() - started) / 1000).toFixed(1)} s: Temporal ${stack.temporal!.address} ` +
      `(UI ${stack.temporal!.uiUrl}, CLI from ${stack.temporal!.source}), Vault ${stack.vault!.address} ` +
      `(from ${stack.vault!.source}), PostgreSQL database ${stack.database!.name}\n`,
  );
}

export async function stopStack(stack: RunningStack): Promise<void> {
  await Promise.allSettled([stack.temporal?.stop(), stack.vault?.stop(), stack.database?.drop()]);
  if (stack.bundles) rmSync(stack.bundles, { recursive: true, force: true });
}
