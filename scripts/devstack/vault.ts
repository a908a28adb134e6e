import { resolveBinary, type BinarySpec } from './binaries';
import { freePort, startServerProcess } from './process';

/**
 * HashiCorp Vault, built from its published Go modules. OpenBao was the first choice (fewer bundled
 * plugins), but the Go module proxy here answers 403 for every version of its root module.
 * Pinned to v1.21.0: a tools module ignores Vault's `replace ./sdk`, so the build uses the published
 * vault/sdk, and only releases cut right after an sdk tag compile against it (v1.21.4 does not).
 */
export const VAULT_SERVER: BinarySpec = {
  displayName: 'Vault server',
  envVar: 'VAULT_BIN',
  command: 'vault',
  version: '1.21.0',
  goToolsModule: 'scripts/go-tools/vault',
  goPackage: 'github.com/hashicorp/vault',
};

/** Options of {@link startVaultDevServer}. */
export interface VaultDevServerOptions {
  /** Listen port on 127.0.0.1. Default: a free port. */
  port?: number;
  /** Root token of the dev server. Default: `tc-dev-root`. */
  rootToken?: string;
  /** How long to wait for the server, in milliseconds. Default: 60000. */
  startupTimeoutMs?: number;
  /** Receives the server's log lines. Default: kept in memory for error messages only. */
  onLine?: (line: string) => void;
}

/** A running Vault dev server: in memory, unsealed, KV v2 mounted at `secret/`. */
export interface VaultDevServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  address: string;
  rootToken: string;
  source: string;
  stop(): Promise<void>;
}

/** Starts `vault server -dev` on a loopback port, finding or building the binary first. */
export async function startVaultDevServer(options: VaultDevServerOptions = {}): Promise<VaultDevServer> {
  const bin = await resolveBinary(VAULT_SERVER);
  const port = options.port ?? (await freePort());
  const rootToken = options.rootToken ?? 'tc-dev-root';
  const address = `http://127.0.0.1:${port}`;
  const server = await startServerProcess({
    displayName: 'Vault dev server',
    executable: bin.path,
    args: ['server', '-dev', `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'],
    // The dev server must not pick up a developer's own Vault settings.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, VAULT_LOG_FORMAT: 'json' },
    startupTimeoutMs: options.startupTimeoutMs,
    onLine: options.onLine,
    isReady: async () => {
      // 200 means initialised, unsealed and active; the dev server mounts `secret/` before that.
      const res = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return res.status === 200;
    },
  });
  return { address, rootToken, source: bin.source, stop: server.stop };
}
