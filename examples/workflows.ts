// The main job's example workflow: one stored connector used four ways.
import { connect, startConnection } from '../workflows';

interface Invoice {
  id: number;
  customer: string;
  amount: number;
}
interface RestOutput<T> {
  status: number;
  body: T;
}

export async function billingDemo(exampleApiUrl: string): Promise<Record<string, unknown>> {
  // 1. Stored: the connector's profile as it is (GET /invoices with the stored bearer token).
  const all = await connect<RestOutput<Invoice[]>>('billing_api');

  // 2. Overridden: the same connector, this call only with another method, path and body.
  const created = await connect<RestOutput<Invoice>>('billing_api', { method: 'post', path: '/invoices', data: { customer: 'globex', amount: 99 } });

  // 3. Inline: a disposable connector defined in workflow code, never stored (the public health check).
  const health = await connect<RestOutput<{ ok: boolean }>>({ type: 'REST', url: `${exampleApiUrl}/health` });

  // 4. Two in parallel: both children start first, then both results are awaited.
  const acme = await startConnection<RestOutput<Invoice[]>>('billing_api', { query: { customer: 'acme' } });
  const globex = await startConnection<RestOutput<Invoice[]>>('billing_api', { query: { customer: 'globex' } });
  const [acmeInvoices, globexInvoices] = await Promise.all([acme.result(), globex.result()]);

  return {
    stored: `${all.body.length} invoice(s)`,
    overridden: `created invoice ${created.body.id} (HTTP ${created.status})`,
    inline: `health ok: ${health.body.ok}`,
    parallel: { acme: acmeInvoices.body.length, globex: globexInvoices.body.length, workflowIds: [acme.workflowId, globex.workflowId] },
  };
}
