import { Client } from 'pg';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import type { CallOutcome } from '../fixtures/connector-workflows';
import { postgresInputs } from '../support/connector-calls';
import { callSummary, startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';

// SQL connectors from workflow code, on the real dev server and the real PostgreSQL server.
describe('POSTGRES connectors from workflows', () => {
  let h: Harness;
  let dbA: ScratchDatabase;
  let dbB: ScratchDatabase;
  const connectorValue = (db: ScratchDatabase) => ({ ...postgresInputs(db), password: 'pg-secret-771' });

  beforeAll(async () => {
    [h, dbA, dbB] = await Promise.all([startHarness(), createScratchDatabase('tc_sql_a'), createScratchDatabase('tc_sql_b')]);
    for (const db of [dbA, dbB]) {
      const c = new Client({ connectionString: db.url });
      await c.connect();
      await c.query('CREATE TABLE invoices (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2))');
      await c.query('INSERT INTO invoices (customer, amount) VALUES ($1, $2)', [db === dbA ? 'from-a' : 'from-b', 10]);
      await c.end();
    }
  });
  afterAll(async () => {
    await h?.shutdown();
    await Promise.all([dbA?.drop(), dbB?.drop()]);
  });

  test('a parameterised query, introspection, and an update that switches databases with no worker restart', async () => {
    const name = uniqueName('pg').toLowerCase();
    await h.service.apply({ name, type: 'POSTGRES', value: connectorValue(dbA) });
    const query = { operation: 'query', sql: 'SELECT customer FROM invoices WHERE amount > $1', params: [5] };

    const first = (await h.call(name, query)).result as CallOutcome;
    expect(first.error).toBeUndefined();
    expect(first.details!.output).toMatchObject({ rows: [{ customer: 'from-a' }], row_count: 1 });
    expect(first.details!.inputs.password).toBe('********');
    const summary = await callSummary(h.client, first.workflowId!);
    expect(summary).toBe(`POSTGRES ${name} query SELECT`);

    const { result: schema } = await h.run<{ schemas: Array<{ name: string; tables: Array<{ name: string; columns: Array<{ name: string }> }> }> }>('introspect', {
      connector: name,
      options: { taskQueue: h.connectorQueue },
    });
    const invoices = schema.schemas.find((s) => s.name === 'public')!.tables.find((t) => t.name === 'invoices')!;
    expect(invoices.columns.map((c) => c.name)).toEqual(['id', 'customer', 'amount']);

    await h.service.apply({ name, type: 'POSTGRES', value: connectorValue(dbB) });
    const second = (await h.call(name, query)).result as CallOutcome;
    expect(second.details!.output).toMatchObject({ rows: [{ customer: 'from-b' }] });
    expect(second.details!.connector.version).toBe(2);
  });

  test('a failing statement is a clear, non-retried error', async () => {
    const name = uniqueName('pgfail').toLowerCase();
    await h.service.apply({ name, type: 'POSTGRES', value: connectorValue(dbA) });
    const { result } = await h.call(name, { sql: 'SELECT * FROM no_such_table' }, { taskQueue: h.connectorQueue, retry: { maximumAttempts: 3, initialInterval: '50ms' } });
    expect(result.error).toMatchObject({ type: expect.stringMatching(/^Connector\./), nonRetryable: true });
    expect(result.error!.message).toContain('no_such_table');
    expect(result.error!.message).not.toContain('pg-secret-771');
  });
});
