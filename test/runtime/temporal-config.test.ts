import { loadClientConfigProfile } from '@temporalio/envconfig';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, temporalConnectionOptions } from '../../core/config';

// Temporal connection settings are read by @temporalio/envconfig, as the Temporal CLI reads them; no server needed.
describe('Temporal connection settings', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tc-temporal-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const at = path.join(dir, name);
    writeFileSync(at, text);
    return at;
  };

  test('nothing set connects to 127.0.0.1:7233 on namespace default, without TLS or API key', () => {
    const { temporal } = loadConfig({});
    expect(temporalConnectionOptions(temporal)).toEqual({ address: '127.0.0.1:7233' });
    expect(temporal.namespace).toBe('default');
  });

  test('TEMPORAL_API_KEY reaches the connection options and turns TLS on, as for Temporal Cloud', () => {
    const { temporal } = loadConfig({ TEMPORAL_ADDRESS: 'billing.a1b2c.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'billing.a1b2c', TEMPORAL_API_KEY: 'key-MARKER-1' });
    expect(temporal.namespace).toBe('billing.a1b2c');
    expect(temporalConnectionOptions(temporal)).toEqual({ address: 'billing.a1b2c.tmprl.cloud:7233', apiKey: 'key-MARKER-1', tls: true });
  });

  test('TEMPORAL_TLS_* certificates reach the connection options as an mTLS client certificate pair', () => {
    const cert = file('client.pem', 'CERT-MARKER');
    const key = file('client.key', 'KEY-MARKER');
    const ca = file('ca.pem', 'CA-MARKER');
    const { temporal } = loadConfig({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: key,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca,
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      TEMPORAL_GRPC_META_X_TEAM: 'billing',
    });
    const options = temporalConnectionOptions(temporal);
    expect(options).toMatchObject({ address: 'temporal.internal:7233', metadata: { 'x-team': 'billing' } });
    const tls = options.tls as { clientCertPair: { crt: Uint8Array; key: Uint8Array }; serverRootCACertificate: Uint8Array; serverNameOverride: string };
    expect(Buffer.from(tls.clientCertPair.crt).toString()).toBe('CERT-MARKER');
    expect(Buffer.from(tls.clientCertPair.key).toString()).toBe('KEY-MARKER');
    expect(Buffer.from(tls.serverRootCACertificate).toString()).toBe('CA-MARKER');
    expect(tls.serverNameOverride).toBe('temporal.internal');
  });

  test('a temporal.toml profile gives address, namespace, API key and TLS; variables override it; TEMPORAL_TLS=false turns TLS off', () => {
    const configFile = file(
      'temporal.toml',
      '[profile.default]\naddress = "a:7233"\n\n[profile.prod]\naddress = "prod.tmprl.cloud:7233"\nnamespace = "prod.acct"\napi_key = "key-MARKER-2"\n[profile.prod.tls]\nserver_name = "prod"\n',
    );
    const prod = loadConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'prod' }).temporal;
    expect(prod).toMatchObject({ address: 'prod.tmprl.cloud:7233', namespace: 'prod.acct', apiKey: 'key-MARKER-2', tls: { serverNameOverride: 'prod' } });
    expect(prod.source).toBe(`TEMPORAL_CONFIG_FILE ${configFile}, TEMPORAL_PROFILE prod`);
    const overridden = loadConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'other', TEMPORAL_TLS: 'false' }).temporal;
    expect(overridden).toMatchObject({ address: 'prod.tmprl.cloud:7233', namespace: 'other', tls: false });
    // An empty variable counts as unset, as everywhere in loadConfig.
    expect(loadConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_ADDRESS: '' }).temporal.address).toBe('a:7233');
  });

  test('a missing file, an unknown profile or a broken file is refused naming it, never quoting the file', () => {
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: path.join(dir, 'nowhere.toml') })).toThrow(
      new ConfigError(`TEMPORAL_CONFIG_FILE ${path.join(dir, 'nowhere.toml')} does not exist`),
    );
    const configFile = file('one.toml', '[profile.default]\naddress = "a:7233"\n');
    expect(() => loadConfig({ TEMPORAL_CONFIG_FILE: configFile, TEMPORAL_PROFILE: 'staging' })).toThrow(
      new ConfigError(`Temporal connection settings (TEMPORAL_CONFIG_FILE ${configFile}, TEMPORAL_PROFILE staging): Profile 'staging' not found in config data`),
    );
    const broken = file('broken.toml', '[profile.default]\napi_key = "key-MARKER-3\n');
    // The parser's own message quotes the broken line, key and all: what the ConfigError must not pass on.
    expect(() => loadClientConfigProfile({ overrideEnvVars: { TEMPORAL_CONFIG_FILE: broken } })).toThrow(/key-MARKER-3/);
    let message = '';
    try {
      loadConfig({ TEMPORAL_CONFIG_FILE: broken });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(new RegExp(`^Temporal connection settings \\(TEMPORAL_CONFIG_FILE ${broken}\\): not valid TOML \\(line \\d+, column \\d+\\)$`));
    expect(message).not.toContain('key-MARKER-3');
    const missingCert = path.join(dir, 'missing.pem');
    expect(() => loadConfig({ TEMPORAL_TLS_CLIENT_CERT_PATH: missingCert, TEMPORAL_TLS_CLIENT_KEY_PATH: missingCert })).toThrow(
      new ConfigError(`Temporal connection settings (temporal.toml): cannot read ${missingCert}: ENOENT`),
    );
  });
});
