// The resolution part of `npm run bench` (bench/connections.ts): what the connector worker does
// before the external call (load the profile, decrypt, read Vault, apply the overrides, validate),
// timed inside this process with no Temporal in the way, with the profile cache and the Vault cache
// hit and missed, over 1, 100 and 10,000 stored connectors.
//
// Method: the runner's `run` (core/runner.ts), the function the `connectors.invoke` activity calls,
// with its `onResolved` hook, which the runner calls once the call is resolved and before the
// external call. Resolution time = from calling `run` to `onResolved`. The call itself then goes to
// the bench's HTTP target with no delay, as a real call would; its time is reported apart.
import { randomBytes } from 'node:crypto';
import vault from 'node-vault';
import { ConnectorRegistry } from '../connectors/registry';
import { Keyring } from '../core/keyring';
import { createConnectionRunner } from '../core/runner';
import { ConnectorService } from '../core/service';
import { ConnectorStore } from '../core/store/connector-store';
import { PgDatabase } from '../core/store/database';
import { VaultSecretSource } from '../core/vault';
import { summarize, type Progress, type Summary } from './connections-stats';

/** Options of {@link benchResolution}. */
export interface ResolutionOptions {
  /** An empty database; the schema is created here. */
  databaseUrl: string;
  vault: { address: string; token: string };
  /** Base URL of the bench's HTTP target. */
  targetUrl: string;
  /** Numbers of stored connectors to measure at, ascending. */
  stored: number[];
  /** Resolutions measured per combination. */
  resolutions: number;
  progress: Progress;
}

/** Inserting connectors through the service, up to `to` stored. */
export interface InsertStep {
  from: number;
  to: number;
  seconds: number;
  /** Milliseconds per connector. */
  perConnectorMs: number;
}

export interface ResolutionRow {
  stored: number;
  profileCache: 'hit' | 'miss';
  vaultCache: 'hit' | 'miss';
  /** Load, decrypt, Vault, overrides, validation: from `run` to `onResolved`, in milliseconds. */
  resolve: Summary;
  /** The whole `run`, the local HTTP call (no delay) and masking included, in milliseconds. */
  run: Summary;
}

export interface ResolutionResults {
  inserts: InsertStep[];
  rows: ResolutionRow[];
  /** How the connectors were inserted, for the output. */
  insertedWith: string;
}

/** Phases {@link benchResolution} reports to `progress`. */
export function resolutionPhases(stored: number[]): number {
  return stored.length * (1 + COMBINATIONS.length);
}

const HOUR_MS = 3_600_000;
const VAULT_PATH = 'secret/data/bench_resolve';
/** Unmeasured runs before a combination that misses the profile cache. */
const WARMUP_RUNS = 100;
/** Definitions per applyMany: one transaction each. */
const INSERT_CHUNK = 1_000;
const COMBINATIONS = [
  { profileCache: 'hit', vaultCache: 'hit' },
  { profileCache: 'hit', vaultCache: 'miss' },
  { profileCache: 'miss', vaultCache: 'hit' },
  { profileCache: 'miss', vaultCache: 'miss' },
] as const;

const connectorName = (i: number) => `bench_res_${String(i).padStart(5, '0')}`;

/** A fixed-seed generator (mulberry32), so that two runs resolve the same connectors in the same order. */
function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function benchResolution(options: ResolutionOptions): Promise<ResolutionResults> {
  const { progress } = options;
  const store = new ConnectorStore(new PgDatabase({ connectionString: options.databaseUrl }));
  await store.migrate();
  const registry = new ConnectorRegistry();
  const keyring = new Keyring([{ id: 'bench', key: randomBytes(32) }]);
  // Never watched, so every load reads the store and decrypts: a profile cache miss, every time.
  const uncached = new ConnectorService({ store, registry, keyring });
  // Long-lived entries, so that none expires while it is measured; change notifications still drop them.
  const cached = new ConnectorService({ store, registry, keyring, cacheTtlMs: HOUR_MS });
  await cached.watch();
  await vault({ apiVersion: 'v1', endpoint: options.vault.address, token: options.vault.token }).write(VAULT_PATH, {
    data: { tenant_key: randomBytes(24).toString('base64url') },
  });
  const vaultSources = {
    hit: new VaultSecretSource({ ...options.vault, cacheTtlMs: HOUR_MS }),
    miss: new VaultSecretSource({ ...options.vault, cacheTtlMs: 0 }),
  };
  const request = (name: string) => ({ connector: name, overrides: { query: { delay_ms: 0 } } });
  const signal = new AbortController().signal;

  const inserts: InsertStep[] = [];
  const rows: ResolutionRow[] = [];
  let count = 0;
  try {
    for (const stored of options.stored) {
      progress.start(`resolution: store connectors ${count + 1}-${stored}`, stored - count, 'connectors');
      const from = count;
      const started = performance.now();
      while (count < stored) {
        const chunk = Array.from({ length: Math.min(INSERT_CHUNK, stored - count) }, (_, i) => ({
          name: connectorName(count + i),
          type: 'REST',
          value: { base_url: options.targetUrl, path: '/item', auth: { type: 'bearer', token: randomBytes(24).toString('base64url') } },
          vault_secrets: [{ path: VAULT_PATH, map: { tenant_key: 'headers.X-Tenant-Key' }, secret_keys: ['tenant_key'] }],
        }));
        await uncached.applyMany(chunk, { actor: 'bench' });
        count += chunk.length;
        progress.tick(count - from);
      }
      const seconds = (performance.now() - started) / 1000;
      inserts.push({ from, to: stored, seconds, perConnectorMs: (seconds * 1000) / Math.max(1, stored - from) });
      // Restarted after the inserts, or their change notifications, which arrive a little later,
      // would drop profiles the warm-up has just cached.
      await cached.close();
      await cached.watch();
      progress.end();

      const random = seededRandom(stored);
      for (const combination of COMBINATIONS) {
        const runner = createConnectionRunner({
          service: combination.profileCache === 'hit' ? cached : uncached,
          vault: vaultSources[combination.vaultCache],
        });
        const names = Array.from({ length: options.resolutions }, () => connectorName(Math.floor(random() * stored)));
        progress.start(`resolution: ${stored} stored, profile cache ${combination.profileCache}, Vault cache ${combination.vaultCache}`, names.length, 'resolutions');
        // Unmeasured: fills the caches this combination hits (every profile it will load, for a profile
        // hit), and warms the JIT and the store's connection either way.
        const warm = combination.profileCache === 'hit' ? [...new Set(names)] : names.slice(0, WARMUP_RUNS);
        for (const name of warm) await runner.run(request(name), { signal });
        if (combination.profileCache === 'hit' && cached.cachedProfiles < new Set(names).size) {
          throw new Error(`the profile cache holds ${cached.cachedProfiles} profiles after warming ${new Set(names).size}: hits would be misses`);
        }
        const resolve: number[] = [];
        const run: number[] = [];
        for (const name of names) {
          const begun = performance.now();
          let resolved = Number.NaN;
          await runner.run(request(name), { signal, onResolved: () => (resolved = performance.now()) });
          const ended = performance.now();
          resolve.push(resolved - begun);
          run.push(ended - begun);
          progress.tick(run.length);
        }
        rows.push({ stored, ...combination, resolve: summarize(resolve), run: summarize(run) });
        progress.end(`resolve p50 ${summarize(resolve).p50.toFixed(3)} ms`);
      }
    }
  } finally {
    await cached.close();
    await registry.close();
    await store.close();
  }
  return { inserts, rows, insertedWith: `ConnectorService.applyMany, ${INSERT_CHUNK} definitions per transaction, validation and encryption included` };
}
