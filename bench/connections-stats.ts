// Figures and progress lines shared by bench/connections.ts and bench/connections-resolve.ts.

/** Percentiles of a sample, in the sample's unit. */
export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentiles: every figure is a value that was measured, none interpolated. */
export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return {
    count: sorted.length,
    p50: rank(50),
    p90: rank(90),
    p99: rank(99),
    mean: sorted.reduce((sum, v) => sum + v, 0) / sorted.length,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

/** A number with `digits` decimals, or a dash when there is none. */
export function fixed(value: number | undefined | null, digits = 1): string {
  return value === undefined || value === null || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

/** A Markdown table; numeric columns (those named in `right`) are right-aligned. */
export function markdownTable(header: string[], rows: string[][], right: (i: number) => boolean = (i) => i > 0): string {
  const align = header.map((_, i) => (right(i) ? '---:' : '---'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/**
 * Progress on stderr: one line when a phase starts and one when it ends; in a terminal, a counter
 * rewritten in place in between.
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private phase = 0;
  private label = '';
  private total = 0;
  private started = 0;
  private lastDraw = 0;

  constructor(private readonly totalPhases: number) {}

  start(label: string, total: number, unit = 'calls'): void {
    this.phase++;
    this.label = `[${this.phase}/${this.totalPhases}] ${label}`;
    this.total = total;
    this.started = performance.now();
    this.lastDraw = 0;
    process.stderr.write(this.tty ? `${this.label}: 0/${total}` : `${this.label}: ${total} ${unit}\n`);
  }

  tick(done: number): void {
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.lastDraw < 200 && done < this.total) return;
    this.lastDraw = now;
    process.stderr.write(`\r${this.label}: ${done}/${this.total}`);
  }

  end(note = ''): void {
    const seconds = ((performance.now() - this.started) / 1000).toFixed(1);
    process.stderr.write(`${this.tty ? `\r${this.label}: ${this.total}/${this.total}` : `${this.label}:`} done in ${seconds} s${note ? `, ${note}` : ''}\n`);
  }

  /** A line of its own, between phases. */
  note(text: string): void {
    process.stderr.write(`${text}\n`);
  }
}
