// The suite-wide leak sweep. Test files record every secret they store or put in Vault, and every
// response an operator's surface gave them; after the whole run, global-teardown.ts scans every
// workflow history of the run's namespace (payloads decoded), every log file and every recorded
// response for those secrets, and fails the run on one hit, saying where.
import type { Client } from '@temporalio/client';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';

export const ARTIFACTS_DIR = path.resolve(__dirname, '..', '..', 'test-artifacts');
const SWEEP_DIR = path.join(ARTIFACTS_DIR, 'leak-sweep');
export const LOG_DIR = path.join(ARTIFACTS_DIR, 'logs');

/** Shorter values are not swept for: they occur by chance (a port, a word). */
const MIN_SECRET_LENGTH = 8;

/** Empties the records of an earlier run; global setup calls it once. */
export function resetLeakSweep(): void {
  rmSync(SWEEP_DIR, { recursive: true, force: true });
  mkdirSync(SWEEP_DIR, { recursive: true });
}

function append(kind: 'secrets' | 'responses', record: object): void {
  mkdirSync(SWEEP_DIR, { recursive: true });
  // One file per jest worker process; whole lines, so concurrent writers never interleave within one.
  appendFileSync(path.join(SWEEP_DIR, `${kind}-${process.pid}.jsonl`), `${JSON.stringify(record)}\n`);
}

/** Records secret values that must never appear in a history, a log line or a response. */
export function recordSecrets(label: string, values: Iterable<unknown>): void {
  for (const value of values) {
    if (typeof value === 'string' && value.length >= MIN_SECRET_LENGTH && !/^\*+$/.test(value)) append('secrets', { label, value });
  }
}

/** Records what an operator-facing surface (the API, the CLI, the codec server) answered. */
export function recordResponse(source: string, text: string): void {
  append('responses', { source, text });
}

/**
 * Every string in a workflow history, payload bytes decoded as UTF-8, for "contains no secret"
 * checks. Walks the protobuf objects themselves: their `toJSON` would turn payload bytes into base64
 * before any replacer saw them, and a secret in base64 is invisible to a substring search. Covers
 * inputs, results, failures (messages, stacks, details), memos, headers, user metadata (summaries,
 * details) and search attributes alike, since all of them are strings or payloads somewhere below.
 */
export function decodedHistoryText(history: unknown): string {
  const parts: string[] = [];
  const seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
    else if (value && typeof value === 'object' && !seen.has(value)) {
      seen.add(value);
      for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child);
    }
  };
  visit(history);
  return parts.join('\n');
}

/** One place a secret was found. */
export interface LeakHit {
  secret: string;
  where: string;
}

/** What the sweep read, and what it found. */
export interface LeakSweepReport {
  secrets: number;
  histories: number;
  logFiles: number;
  responses: number;
  hits: LeakHit[];
}

function readJsonl<T>(kind: string): T[] {
  if (!existsSync(SWEEP_DIR)) return [];
  return readdirSync(SWEEP_DIR)
    .filter((f) => f.startsWith(`${kind}-`))
    .flatMap((f) =>
      readFileSync(path.join(SWEEP_DIR, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as T),
    );
}

function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? filesBelow(file) : [file];
  });
}

/** Scans the namespace's histories, the log files and the recorded responses for every recorded secret. */
export async function sweepForLeaks(client: Client): Promise<LeakSweepReport> {
  const secrets = [...new Set(readJsonl<{ value: string }>('secrets').map((r) => r.value))];
  const hits: LeakHit[] = [];
  const scan = (text: string, where: (secret: string) => string) => {
    for (const secret of secrets) if (text.includes(secret)) hits.push({ secret, where: where(secret) });
  };

  let histories = 0;
  for await (const execution of client.workflow.list()) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    histories++;
    scan(decodedHistoryText(history), () => `history of ${execution.type} ${execution.workflowId} (run ${execution.runId})`);
  }

  const logFiles = filesBelow(LOG_DIR);
  for (const file of logFiles) {
    const lines = readFileSync(file, 'utf8').split('\n');
    scan(lines.join('\n'), (secret) => `${path.relative(ARTIFACTS_DIR, file)}:${lines.findIndex((l) => l.includes(secret)) + 1}`);
  }

  const responses = readJsonl<{ source: string; text: string }>('responses');
  for (const response of responses) scan(response.text, () => `a response of ${response.source}`);

  return { secrets: secrets.length, histories, logFiles: logFiles.length, responses: responses.length, hits };
}
