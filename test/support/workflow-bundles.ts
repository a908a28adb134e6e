// Workflow bundles made once per run. Bundling with webpack takes seconds on a loaded 2-core machine,
// and a harness needs two bundles; made once in global setup, every harness of every file reads the
// same code instead of bundling it again. A bundle holds the workflow code and the SDK's default
// payload and failure converters, so it serves only workers that configure neither (a worker with the
// encryption plugin bundles its own: its failure converter goes into the bundle).
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** The workflow modules bundled beforehand, and the environment variable through which each bundle's file is handed to test files. */
export const PREBUILT_WORKFLOWS = {
  /** The `connection` workflow, as createConnectorWorker bundles it. */
  connection: { workflowsPath: require.resolve('../../workflows/connection'), env: 'TC_TEST_CONNECTION_BUNDLE' },
  /** The fixture workflows that call connectors as user code does. */
  connectorWorkflows: { workflowsPath: require.resolve('../fixtures/connector-workflows'), env: 'TC_TEST_CONNECTOR_WORKFLOWS_BUNDLE' },
  /** The example workflows of examples/workflows.ts. */
  examples: { workflowsPath: require.resolve('../../examples/workflows'), env: 'TC_TEST_EXAMPLES_BUNDLE' },
} as const;

export type PrebuiltWorkflows = keyof typeof PREBUILT_WORKFLOWS;

/** Bundles every {@link PREBUILT_WORKFLOWS} module into a folder of its own and sets the environment variables; returns the folder. */
export async function bundlePrebuiltWorkflows(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tc-workflow-bundles-'));
  try {
    // One after the other: webpack is CPU-bound, and the servers start on the same two cores meanwhile.
    for (const [name, { workflowsPath, env }] of Object.entries(PREBUILT_WORKFLOWS)) {
      const { code } = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
      const codePath = path.join(dir, `${name}.js`);
      writeFileSync(codePath, code);
      process.env[env] = codePath;
    }
    return dir;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The bundle of `name` made by global setup, as Worker options take it. */
export function prebuiltBundle(name: PrebuiltWorkflows): { codePath: string } {
  const { env } = PREBUILT_WORKFLOWS[name];
  const codePath = process.env[env];
  if (!codePath) throw new Error(`${env} is not set: run the tests through jest, whose global setup bundles the workflows.`);
  return { codePath };
}

/** The bundler's progress lines would only clutter the run's output; its warnings and errors are shown. */
const noop = () => {};
const show = (message: string) => process.stderr.write(`[workflow bundles] ${message}\n`);
const quietLogger = { log: noop, trace: noop, debug: noop, info: noop, warn: show, error: show };
