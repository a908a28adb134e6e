import { Client } from 'pg';
import { testStack } from '../support/stack';

describe('PostgreSQL (real)', () => {
  const { databaseUrl } = testStack();

  test('the run has a database of its own, and a parameterised query round-trips', async () => {
    const client = new Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ db: string; doubled: number; server_version_num: string }>(
        'SELECT current_database() AS db, $1::int * 2 AS doubled, current_setting($2) AS server_version_num',
        [21, 'server_version_num'],
      );
      expect(rows[0].db).toBe(new URL(databaseUrl).pathname.slice(1));
      expect(rows[0].db).toMatch(/^tc_test_/);
      expect(rows[0].doubled).toBe(42);
      expect(Number(rows[0].server_version_num)).toBeGreaterThanOrEqual(130000);
    } finally {
      await client.end();
    }
  });
});
