// Lint rules. The one that matters most: workflows/ runs inside Temporal's deterministic sandbox,
// so it may import only @temporalio/workflow, zod and types. Anything with I/O there would either
// break determinism or drag credentials into workflow code.
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

/** Modules with I/O or non-determinism that workflow code must never load (types are fine). */
export const WORKFLOW_FORBIDDEN_MODULES = [
  ...builtinModules,
  'pg',
  'pg-pool',
  'mysql2',
  'node-vault',
  'openai',
  'axios',
  'undici',
  'node-fetch',
  '@electric-sql/pglite',
  '@temporalio/worker',
  '@temporalio/client',
  '@temporalio/activity',
  '@temporalio/testing',
];

export default tseslint.config(
  // test/fixtures/lint-probe breaks the rules on purpose; test/lint.test.ts lints it explicitly.
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.cache/', '.data/', 'test-artifacts/', 'test/fixtures/lint-probe/', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts', 'test/fixtures/lint-probe/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: WORKFLOW_FORBIDDEN_MODULES.map((name) => ({
            name,
            message: 'workflows/ is sandbox-safe: no Node built-ins or I/O libraries (use `import type`, or move the code to activities/).',
            allowTypeImports: true,
          })),
          patterns: [
            { group: ['node:*'], message: 'workflows/ is sandbox-safe: no Node built-ins.', allowTypeImports: true },
            {
              group: ['**/activities', '**/activities/**', '**/connectors', '**/connectors/**', '**/worker', '**/worker/**', '**/cli/**', '**/scripts/**'],
              message: 'workflows/ may import only types from worker-side code.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
