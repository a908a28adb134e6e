// `npm run worker`: a connector worker on its own, configured by the environment (read here, once).
import { loadConfig } from '../core/config';
import { runStandaloneConnectorWorker } from './standalone';

Promise.resolve()
  .then(() => runStandaloneConnectorWorker(loadConfig()))
  .catch((err: Error) => {
    console.error(`connector worker failed: ${err.message}`);
    process.exit(1);
  });
