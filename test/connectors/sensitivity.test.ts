import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { matchesSensitive, sensitivePatterns } from '../../console/src/sensitive';
import { ConnectorRegistry } from '../../connectors/registry';
import { SECRET_HEADER_NAMES, sensitive, sensitiveEntries, sensitivePaths } from '../../connectors/sensitivity';
import { isSensitivePath, mapSensitive, MASK } from '../../core/inputs';
import { Keyring } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgliteDatabase } from '../../core/store/database';

/** What each type listed by hand before sensitivity was marked on its schema's fields. */
const DECLARED_BY_HAND: Record<string, readonly string[]> = {
  REST: ['auth.password', 'auth.token', 'auth.value', 'headers.authorization', 'headers.proxy-authorization', 'headers.x-api-key', 'headers.cookie'],
  OPENAI: ['api_key'],
  POSTGRES: ['password'],
  MYSQL: ['password'],
  SMTP: ['auth.password'],
  // Added after the marks: its secrets were marked on the schema from the start.
  MCP: ['bearer_token', 'env.*', 'headers.authorization'],
  AGENT: [],
  SSH: ['jump_host.passphrase', 'jump_host.password', 'jump_host.private_key', 'passphrase', 'password', 'private_key'],
  SFTP: ['jump_host.passphrase', 'jump_host.password', 'jump_host.private_key', 'passphrase', 'password', 'private_key'],
};

const headerPatterns = SECRET_HEADER_NAMES.map((name) => `headers.${name}`);

// Sensitivity is declared once, on the fields of each type's zod schema; the type's paths, the JSON
// Schema the API serves and the console's masking are derived from it. Pure code: no server needed.
describe('sensitive fields, declared in the schema', () => {
  const registry = new ConnectorRegistry();

  test('every registered type derives at least what it declared by hand before: no field lost', () => {
    expect(registry.names()).toEqual(Object.keys(DECLARED_BY_HAND).sort());
    for (const type of registry.all()) {
      const before = DECLARED_BY_HAND[type.name];
      for (const path of before) expect([type.name, path, isSensitivePath(path.split('.'), type.sensitive)]).toEqual([type.name, path, true]);
      // Besides the header rule, exactly the fields declared before: nothing became a secret by accident.
      expect([type.name, type.sensitive.filter((p) => !p.startsWith('headers.')).sort()]).toEqual([type.name, before.filter((p) => !p.startsWith('headers.')).sort()]);
      expect(type.sensitive).toEqual(sensitivePaths(type.schema));
    }
    expect(registry.get('REST')!.sensitive.filter((p) => p.startsWith('headers.'))).toEqual(headerPatterns);
  });

  test('header values are secrets by a broad rule on their names, case-insensitive', () => {
    const rest = registry.get('REST')!.sensitive;
    const secret = ['Authorization', 'proxy-authorization', 'Cookie', 'Set-Cookie', 'X-Auth-Token', 'X-Api-Key', 'api-key', 'X-Hub-Signature-256', 'X-Client-Secret', 'X-Password', 'X-Session-Id', 'X-AUTH', 'x.token'];
    const data = ['Accept', 'Content-Type', 'X-Team', 'X-Request-Id', 'User-Agent', 'If-Match'];
    for (const name of secret) expect([name, isSensitivePath(['headers', name], rest)]).toEqual([name, true]);
    for (const name of data) expect([name, isSensitivePath(['headers', name], rest)]).toEqual([name, false]);
    // Only headers: a field elsewhere whose name holds "key" is not a header.
    expect(isSensitivePath(['query', 'api_key'], rest)).toBe(false);
    expect(mapSensitive({ headers: { 'X-Auth-Token': 't', Accept: 'json' }, auth: { type: 'bearer', token: 't' } }, rest, () => MASK)).toEqual({
      headers: { 'X-Auth-Token': MASK, Accept: 'json' },
      auth: { type: 'bearer', token: MASK },
    });
    // A glob is a pattern, not a regular expression: its other characters match only themselves.
    expect(isSensitivePath(['a', 'x.y'], ['a.x.y'])).toBe(false);
    expect(isSensitivePath(['a', 'x(y)'], ['a.*(y)'])).toBe(true);
    expect(isSensitivePath(['a', 'xzy'], ['a.x.y'])).toBe(false);
  });

  test('the JSON Schema the API serves marks the fields, and the console derives from it what the server derives', async () => {
    const store = new ConnectorStore(await PgliteDatabase.open());
    try {
      await store.migrate();
      const service = new ConnectorService({ store, registry, keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
      const types = service.types();
      expect(types.map((t) => t.name).sort()).toEqual(registry.names());
      for (const info of types) {
        expect([info.name, sensitivePatterns(info.json_schema)]).toEqual([info.name, registry.get(info.name)!.sensitive]);
        expect(info.sensitive).toEqual(registry.get(info.name)!.sensitive);
      }
      const rest = types.find((t) => t.name === 'REST')!.json_schema as { properties: Record<string, { sensitive?: unknown; oneOf?: unknown }> };
      expect(rest.properties.headers.sensitive).toEqual(SECRET_HEADER_NAMES);
      expect(JSON.stringify(rest.properties.auth)).toContain('"sensitive":true');
      // The console's matcher agrees with the server's on names and on wildcards.
      const patterns = registry.get('REST')!.sensitive;
      for (const path of [['headers', 'X-Auth-Token'], ['headers', 'Accept'], ['auth', 'token'], ['auth', 'username'], ['headers', 'X-Hub-Signature']]) {
        expect([path, matchesSensitive(path, patterns)]).toEqual([path, isSensitivePath(path, patterns)]);
      }
    } finally {
      await store.close();
    }
  });

  test('marks are followed through optional, default, unions, maps and $refs; one inside an array is refused', () => {
    const schema = z.strictObject({
      plain: z.string().optional(),
      secret: sensitive(z.string()).optional().describe('x'),
      nested: z.object({ inner: sensitive(z.string().default('d')) }).optional(),
      choice: z.discriminatedUnion('kind', [z.object({ kind: z.literal('a'), pin: sensitive(z.string()) }), z.object({ kind: z.literal('b') })]),
      every: z.record(z.string(), sensitive(z.string())),
      named: sensitiveEntries(z.record(z.string(), z.string()), ['*token*']),
    });
    expect(sensitivePaths(schema)).toEqual(['secret', 'nested.inner', 'choice.pin', 'every.*', 'named.*token*']);
    expect(sensitivePatterns(z.toJSONSchema(schema, { io: 'input' }) as Record<string, unknown>)).toEqual(sensitivePaths(schema));
    // A recursive schema without marks is fine; one with marks would need paths of every depth, and is refused.
    const plainTree: z.ZodType = z.lazy(() => z.object({ name: z.string(), child: plainTree.optional() }));
    expect(sensitivePaths(z.object({ root: plainTree, key: sensitive(z.string()) }))).toEqual(['key']);
    const tree: z.ZodType = z.lazy(() => z.object({ key: sensitive(z.string()), child: tree.optional() }));
    expect(() => sensitivePaths(z.object({ root: tree }))).toThrow(/^root\.child: a sensitive field inside a recursive schema is not supported/);
    expect(() => sensitivePaths(z.object({ list: z.array(z.object({ password: sensitive(z.string()) })) }))).toThrow(/list\.\[\]\.password: a sensitive field inside an array is not supported/);
  });
});
