// `npm run worker`: a connector worker on its own.
import { runStandaloneConnectorWorker } from './standalone';

runStandaloneConnectorWorker().catch((err: Error) => {
  console.error(`connector worker failed: ${err.message}`);
  process.exit(1);
});
