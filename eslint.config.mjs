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

/**
 * The layers below the surfaces, each with what it must not import: imports flow one way,
 * `cli`/`api`/`worker` → `activities` → `core` → `connectors` → `workflows` (types). See ARCHITECTURE.md.
 */
const LAYERS = [
  { folder: 'activities', above: ['worker', 'api', 'cli'], modules: ['@temporalio/worker', '@temporalio/client'] },
  { folder: 'core', above: ['activities', 'worker', 'api', 'cli'], modules: ['@temporalio/worker', '@temporalio/client', '@temporalio/activity'] },
  { folder: 'connectors', above: ['core', 'activities', 'worker', 'api', 'cli'], modules: ['@temporalio/worker', '@temporalio/client', '@temporalio/activity'] },
];

function layerRule({ folder, above, modules }) {
  return {
    files: [`${folder}/**/*.ts`, `test/fixtures/lint-probe/${folder}/**/*.ts`],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: modules.map((name) => ({ name, message: `${folder}/ does not run a Temporal worker or client: that belongs to the layers above it.` })),
          patterns: [
            {
              group: above.flatMap((layer) => [`**/${layer}`, `**/${layer}/**`]),
              message: `imports flow one way (cli/api/worker → activities → core → connectors → workflows): ${folder}/ may not import ${above.join(', ')}.`,
            },
          ],
        },
      ],
    },
  };
}

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
              group: ['**/activities', '**/activities/**', '**/connectors', '**/connectors/**', '**/core', '**/core/**', '**/worker', '**/worker/**', '**/cli/**', '**/scripts/**'],
              message: 'workflows/ may import only types from worker-side code.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
  ...LAYERS.map(layerRule),
  {
    // The console runs in people's browsers and talks to the server only through the HTTP API: it
    // imports nothing of the server's code and no Node built-ins (esbuild would bundle them into the page).
    files: ['console/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinModules.map((name) => ({ name, message: 'console/ runs in the browser: no Node built-ins.' })),
          patterns: [
            { group: ['node:*'], message: 'console/ runs in the browser: no Node built-ins.' },
            { group: ['../*', '../**'], message: 'console/src is the page: it reaches the server only through the HTTP API (console/src/api.ts), not by importing server code.' },
          ],
        },
      ],
    },
  },
);
