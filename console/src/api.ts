// The console's only way to the server: the management API's /v1 routes, same origin. The session is
// an HttpOnly cookie that this code never sees; each request says it comes from the console with
// X-TC-Console, which the API requires of cookie sessions (a page of another site cannot send it).

/** A field problem as the API reports it: a dotted path (`value.auth.token`) and a sentence. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** An answer other than 2xx, as the API's error body describes it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly issues: FieldIssue[] = [],
    readonly currentVersion?: number,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
  }
}

export interface Session {
  access: 'read' | 'write';
  expires_at: string;
  temporal_ui: { url: string; namespace: string } | null;
}

/** A connector as the API shows it: sensitive values are `********`. */
export interface ConnectorView {
  name: string;
  type: string;
  description: string;
  value: Record<string, unknown>;
  vault_secrets: unknown[];
  locked: string[];
  allowed_destinations?: string[];
  retry?: Record<string, unknown>;
  timeout?: string | number;
  /** Present when the connector limits its calls. */
  limits?: Record<string, unknown>;
  version: number;
  created_at: string;
  created_by: string;
}

/** What `limits reset` answers: whether a 429's back-off was in force and is now cleared. */
export interface LimitsReset {
  name: string;
  backoff_cleared: boolean;
}

export interface HistoryEntry extends ConnectorView {
  deleted: boolean;
  changed: string[];
}

export interface TypeInfo {
  name: string;
  description: string;
  fields: string[];
  sensitive: string[];
  json_schema: JsonSchema;
}

export type JsonSchema = { [key: string]: unknown };

export interface TypesAnswer {
  types: TypeInfo[];
  definition_json_schema: JsonSchema;
}

export interface TestOutcome {
  ok: boolean;
  message: string;
  latency_ms?: number;
}

type Body = { json: unknown } | { yaml: string } | undefined;

async function request<T>(method: string, path: string, options: { body?: Body; headers?: Record<string, string> } = {}): Promise<{ data: T; etag: string | null }> {
  const headers: Record<string, string> = { accept: 'application/json', 'x-tc-console': '1', ...options.headers };
  let body: string | undefined;
  if (options.body && 'json' in options.body) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body.json);
  } else if (options.body && 'yaml' in options.body) {
    headers['content-type'] = 'application/yaml';
    body = options.body.yaml;
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'Request.Network', 'the API did not answer: is `connectors serve` still running?');
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = (parsed as { error?: Record<string, unknown> } | undefined)?.error ?? {};
    const message = typeof error.message === 'string' ? error.message : `the API answered ${response.status} ${response.statusText}`;
    const position = typeof error.line === 'number' ? { line: error.line, column: Number(error.column ?? 1) } : positionIn(message);
    throw new ApiError(
      response.status,
      typeof error.type === 'string' ? error.type : 'Request.Failed',
      message,
      Array.isArray(error.issues) ? (error.issues as FieldIssue[]) : [],
      typeof error.current_version === 'number' ? error.current_version : undefined,
      position?.line,
      position?.column,
    );
  }
  return { data: parsed as T, etag: response.headers.get('etag') };
}

/** `request body:4:7: ...`: where the API's YAML reader stopped, from its message. */
function positionIn(message: string): { line: number; column: number } | undefined {
  const match = /:(\d+):(\d+): /.exec(message);
  return match ? { line: Number(match[1]), column: Number(match[2]) } : undefined;
}

const enc = encodeURIComponent;

export const api = {
  async signIn(token: string): Promise<Session> {
    return (await request<Session>('POST', '/v1/session', { headers: { authorization: `Bearer ${token}` } })).data;
  },
  async session(): Promise<Session> {
    return (await request<Session>('GET', '/v1/session')).data;
  },
  async signOut(): Promise<void> {
    await request('DELETE', '/v1/session');
  },
  async types(): Promise<TypesAnswer> {
    return (await request<TypesAnswer>('GET', '/v1/types')).data;
  },
  async list(): Promise<ConnectorView[]> {
    return (await request<{ connectors: ConnectorView[] }>('GET', '/v1/connectors')).data.connectors;
  },
  async get(name: string, version?: number): Promise<ConnectorView> {
    return (await request<ConnectorView>('GET', `/v1/connectors/${enc(name)}${version ? `?version=${version}` : ''}`)).data;
  },
  async history(name: string): Promise<HistoryEntry[]> {
    return (await request<{ versions: HistoryEntry[] }>('GET', `/v1/connectors/${enc(name)}/history`)).data.versions;
  },
  async create(body: Body): Promise<ConnectorView> {
    return (await request<ConnectorView>('POST', '/v1/connectors', { body })).data;
  },
  async update(name: string, version: number, body: Body): Promise<ConnectorView> {
    return (await request<ConnectorView>('PUT', `/v1/connectors/${enc(name)}`, { body, headers: { 'if-match': `"${version}"` } })).data;
  },
  async remove(name: string, version: number): Promise<ConnectorView> {
    return (await request<ConnectorView>('DELETE', `/v1/connectors/${enc(name)}`, { headers: { 'if-match': `"${version}"` } })).data;
  },
  async rollback(name: string, toVersion: number, currentVersion: number): Promise<ConnectorView> {
    return (
      await request<ConnectorView>('POST', `/v1/connectors/${enc(name)}/rollback`, {
        body: { json: { version: toVersion } },
        headers: { 'if-match': `"${currentVersion}"` },
      })
    ).data;
  },
  async resetLimits(name: string): Promise<LimitsReset> {
    return (await request<LimitsReset>('POST', `/v1/connectors/${enc(name)}/limits/reset`)).data;
  },
  async test(name: string): Promise<TestOutcome> {
    return (await request<TestOutcome>('POST', `/v1/connectors/${enc(name)}/test`)).data;
  },
  async introspect(name: string): Promise<unknown> {
    return (await request<unknown>('POST', `/v1/connectors/${enc(name)}/introspect`)).data;
  },
};
