import { ESLint } from 'eslint';
import * as path from 'node:path';

// The sandbox boundary is enforced by lint; this proves the rule fires, so a config change cannot silently drop it.
describe('lint keeps workflows/ sandbox-safe', () => {
  const root = path.resolve(__dirname, '..');
  const probe = (file: string) => path.join(root, 'test', 'fixtures', 'lint-probe', file.includes('/') ? file : `workflows/${file}`);
  const eslint = new ESLint({ cwd: root, ignore: false });

  async function refusedLines(file: string): Promise<number[]> {
    const [result] = await eslint.lintFiles([probe(file)]);
    expect(result.messages.filter((m) => m.fatal)).toEqual([]);
    const lines = result.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.line);
    return [...new Set(lines)]; // one import may break two entries of the rule (a path and a pattern)
  }

  test('Node built-ins, I/O libraries, worker packages and worker-side code are refused', async () => {
    // Lines 2-9 of the probe each import one forbidden module.
    expect(await refusedLines('forbidden.ts')).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('@temporalio/workflow, zod and type-only imports are allowed', async () => {
    expect(await refusedLines('allowed.ts')).toEqual([]);
  });

  test('imports flow one way: core/, connectors/ and activities/ may not import the layers above them', async () => {
    expect(await refusedLines('core/upward.ts')).toEqual([2, 3, 4, 5, 6]);
    expect(await refusedLines('connectors/upward.ts')).toEqual([2, 3, 4]);
    expect(await refusedLines('activities/upward.ts')).toEqual([2, 3]);
  });
});
