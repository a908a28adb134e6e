// The process-wide set of secrets that log lines are redacted of. The runner adds every secret it
// resolves; the JSON logger (worker/logging.ts) redacts with it. Here, below both, so that the core
// does not reach up into the Temporal worker for it.
import { isPlainObject, MASK, Redactor } from './inputs';

/** Options of {@link SecretRedactions}. */
export interface SecretRedactionsOptions {
  /** How many distinct secrets are kept; beyond it, the least recently added is dropped. Default: 10000. */
  maxSize?: number;
}

/**
 * Every secret value the process has resolved, for redacting log lines. A call's own {@link Redactor}
 * guards what goes to history; this set guards what goes to logs, where lines come from anywhere
 * (the SDK's "Activity failed", a driver's warning) and no single call's Redactor is at hand.
 *
 * Bounded, so a worker that runs for months with rotating credentials does not grow without limit:
 * adding a secret again makes it the newest, and the least recently added ones go first.
 */
export class SecretRedactions {
  /** Default of {@link SecretRedactionsOptions.maxSize}. */
  static readonly DEFAULT_MAX_SIZE = 10_000;

  readonly maxSize: number;
  // Insertion order is recency order: re-adding deletes and sets again.
  private readonly secrets = new Map<string, true>();
  // What `redact` searches for, longest first; rebuilt lazily after the set changed.
  private patterns: string[] | undefined;

  constructor(options: SecretRedactionsOptions = {}) {
    this.maxSize = Math.max(1, options.maxSize ?? SecretRedactions.DEFAULT_MAX_SIZE);
  }

  /** How many secrets are held. */
  get size(): number {
    return this.secrets.size;
  }

  /**
   * Adds every string, number and bigint found in `values`, deep inside arrays and plain objects
   * (the same values a {@link Redactor} would take). Strings shorter than `Redactor.MIN_LENGTH` and
   * the mask itself are ignored, as in `Redactor`: redacting every `1` would garble every line.
   */
  add(values: Iterable<unknown>): void {
    const collect = (v: unknown): void => {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') this.addOne(String(v));
      else if (Array.isArray(v)) v.forEach(collect);
      else if (isPlainObject(v)) Object.values(v).forEach(collect);
    };
    for (const v of values) collect(v);
  }

  /** `text` with every held secret replaced by `********`, also where it appears JSON-escaped. */
  redact(text: string): string {
    if (this.secrets.size === 0) return text;
    let out = text;
    for (const pattern of this.searchPatterns()) if (out.includes(pattern)) out = out.split(pattern).join(MASK);
    return out;
  }

  /** Forgets every secret. */
  clear(): void {
    this.secrets.clear();
    this.patterns = undefined;
  }

  private addOne(secret: string): void {
    // A run of asterisks would match inside the mask itself and re-redact it without end.
    if (secret.length < Redactor.MIN_LENGTH || MASK.includes(secret)) return;
    const known = this.secrets.delete(secret);
    this.secrets.set(secret, true);
    if (known) return; // only its recency changed
    this.patterns = undefined;
    while (this.secrets.size > this.maxSize) this.secrets.delete(this.secrets.keys().next().value!);
  }

  private searchPatterns(): string[] {
    if (!this.patterns) {
      const patterns = new Set<string>();
      for (const secret of this.secrets.keys()) {
        patterns.add(secret);
        // Inside a JSON string, `a"b` reads `a\"b`: a log line that carries a JSON body must not escape redaction.
        patterns.add(JSON.stringify(secret).slice(1, -1));
      }
      // Longest first, so a secret that contains another is replaced whole.
      this.patterns = [...patterns].sort((a, b) => b.length - a.length);
    }
    return this.patterns;
  }
}

// One set per process, even if this module is loaded twice (two copies of the package, say): the
// runner that adds secrets and the logger that redacts must see the same set.
const SHARED = Symbol.for('temporal-connectors.secretRedactions');
const holder = globalThis as typeof globalThis & { [SHARED]?: SecretRedactions };

/** The process-wide set: the connector runner adds every secret it resolves, {@link JsonLogger} redacts with it. */
export const secretRedactions: SecretRedactions = (holder[SHARED] ??= new SecretRedactions());
