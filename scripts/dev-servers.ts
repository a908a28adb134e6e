// `npm run servers`: finds or builds the Temporal CLI, the Vault server and Mailpit, and prints where they are.
// `npm run servers -- --start` also starts them on loopback ports until Ctrl-C.
import { resolveBinary } from './devstack/binaries';
import { MAILPIT_SERVER, startMailpit } from './devstack/mailpit';
import { startTemporalDevServer, TEMPORAL_CLI } from './devstack/temporal';
import { startVaultDevServer, VAULT_SERVER } from './devstack/vault';

async function main(): Promise<void> {
  for (const spec of [TEMPORAL_CLI, VAULT_SERVER, MAILPIT_SERVER]) {
    const started = Date.now();
    const bin = await resolveBinary(spec);
    console.log(`${spec.displayName}: ${bin.path} (${bin.source}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  if (!process.argv.includes('--start')) return;
  const [temporal, vault, mailpit] = await Promise.all([startTemporalDevServer(), startVaultDevServer(), startMailpit()]);
  console.log(`Temporal: ${temporal.address}  Web UI: ${temporal.uiUrl}`);
  console.log(`Vault:    ${vault.address}  root token: ${vault.rootToken}`);
  console.log(`Mailpit:  SMTP ${mailpit.host}:${mailpit.smtpPort} (STARTTLS, user mailer, password mailer-password)  web UI and API: ${mailpit.apiUrl}`);
  const stop = async () => {
    await Promise.all([temporal.stop(), vault.stop(), mailpit.stop()]);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
