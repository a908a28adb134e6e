import { Client, Connection } from '@temporalio/client';
import { stopStack } from './global-setup';
import { sweepForLeaks, type LeakSweepReport } from './support/leak-sweep';

/** Sweeps the whole run for leaked secrets while the servers still run, then stops them. */
export default async function globalTeardown(): Promise<void> {
  const stack = globalThis.__TC_STACK__;
  globalThis.__TC_STACK__ = undefined;
  let report: LeakSweepReport | undefined;
  try {
    if (stack?.temporal) {
      const connection = await Connection.connect({ address: stack.temporal.address });
      try {
        report = await sweepForLeaks(new Client({ connection, namespace: stack.temporal.namespace }));
      } finally {
        await connection.close();
      }
    }
  } finally {
    if (stack) await stopStack(stack);
  }
  if (!report) return;
  const scanned = `${report.histories} histories, ${report.logFiles} log files and ${report.responses} responses for ${report.secrets} secrets`;
  if (report.hits.length === 0) {
    process.stderr.write(`\n[leak sweep] scanned ${scanned}: no secret found\n`);
    return;
  }
  const lines = report.hits.map((hit) => `  ${hit.secret.slice(0, 6)}… in ${hit.where}`);
  const message = `[leak sweep] scanned ${scanned}: ${report.hits.length} leak(s)\n${lines.join('\n')}\n`;
  const error = new Error(message);
  error.stack = message; // where the leaks are is the message; a stack trace of the teardown only hides it
  throw error;
}
