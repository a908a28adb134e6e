/**
 * The SFTP connector type: files on a remote host through SSH's SFTP subsystem (ssh2's client), with
 * the same connection inputs and host-key rule as SSH (connectors/ssh-transport.ts). Operations:
 * `list`, `stat`, `get` (content inline, up to 1 MiB), `put` (inline content), `mkdir`, `rename`,
 * `remove`.
 *
 * Every path is relative to the profile's `root`, and may not leave it: an absolute path, a `..`
 * segment, or a symbolic link whose target lies outside is refused, naming the field, before the
 * file is touched (unless the profile sets `allow_absolute_paths`). `root` and
 * `allow_absolute_paths` are part of the destination the connector's secrets are bound to, so an
 * override that widens either gets no stored credential: a workflow author reaches no more of the
 * server than the profile's owner decided.
 */
import { posix } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Client, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { z } from 'zod';
import { FailureType, permanentFailure } from './errors';
import type { PoolOptions } from './pools';
import { sensitivePaths } from './sensitivity';
import { connectionFailure, createSshPools, openSession, pinnedHostKeys, reportOfferedHostKey, sshAddress, sshConnectionFields, subjectOf, testFailureMessage, type SshPools } from './ssh-transport';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

/** The most bytes `get` returns and `put` sends inline: 1 MiB. */
export const MAX_INLINE_BYTES = 1_048_576;
/** The most entries `list` returns: 1000. */
export const MAX_LIST_ENTRIES = 1_000;
/** How deep `introspect` lists the tree below `root`: 2 levels. */
export const INTROSPECTION_DEPTH = 2;
/** The most entries `introspect` lists in all: 200. */
export const INTROSPECTION_ENTRIES = 200;

export const SFTP_OPERATIONS = ['list', 'stat', 'get', 'put', 'mkdir', 'rename', 'remove'] as const;

const pathField = (description: string, examples: string[]) =>
  z
    .string()
    .min(1)
    .refine((p) => !p.includes('\0'), { message: 'must not contain a NUL character' })
    .meta({ description, examples });

const fileMode = z
  .union([z.number().int().min(0).max(0o7777), z.string().regex(/^0?[0-7]{3,4}$/, { message: "must be an octal mode such as '0644'" })])
  .meta({ description: "Permissions, as an octal string such as '0644' (or the number). Default: 0644 for `put` (new files only), 0755 for `mkdir`.", examples: ['0640'] });

/** Inputs of an SFTP connector (snake_case: they are data in profiles, Vault secrets and overrides). */
export const sftpSchema = z
  .strictObject({
    ...sshConnectionFields,
    root: z
      .string()
      .min(1)
      .refine((p) => !p.includes('\0'), { message: 'must not contain a NUL character' })
      .default('.')
      .meta({
        description:
          "Folder every path is relative to; paths may not leave it (`..`, absolute paths and symbolic links pointing outside are refused). Absolute, or relative to the user's home. Part of the connector's destination: an override of it gets no stored secret. Default `.` (the user's home).",
        examples: ['/srv/exports'],
      }),
    allow_absolute_paths: z
      .boolean()
      .default(false)
      .describe('Let paths be absolute (and reach anything the user may) instead of relative to `root`. Part of the destination, like `root`. Default `false`.'),
    operation: z.enum(SFTP_OPERATIONS).default('list').describe(`What to do: ${SFTP_OPERATIONS.join(', ')}. Default \`list\`.`),
    path: pathField('File or folder the operation works on, relative to `root`. Default `.` (root itself), for `list` and `stat`; required for the others.', ['reports/2024-06.csv']).optional(),
    to: pathField('For `rename`: the new path, relative to `root`. Default: none.', ['archive/2024-06.csv']).optional(),
    content: z
      .string()
      .optional()
      .describe('For `put`: the file content, at most 1 MiB once decoded (`encoding`). Default: none.'),
    encoding: z
      .enum(['utf8', 'base64'])
      .default('utf8')
      .describe('How `content` is written in `put` and returned by `get`: `utf8` text or `base64` bytes. Default `utf8`; `get` of bytes that are not UTF-8 asks for base64.'),
    mode: fileMode.optional(),
  })
  .superRefine((inputs, ctx) => {
    if (inputs.to !== undefined && inputs.operation !== 'rename') ctx.addIssue({ code: 'custom', path: ['to'], message: 'is only for operation rename' });
    if (inputs.content !== undefined && inputs.operation !== 'put') ctx.addIssue({ code: 'custom', path: ['content'], message: 'is only for operation put' });
  });

export type SftpInputs = z.output<typeof sftpSchema>;

const SFTP_SENSITIVE = sensitivePaths(sftpSchema);

/**
 * Where an SFTP connector's calls go: the SSH destination (`host:port host_key=…`), and the part of
 * the server they may reach: ` root=<root>`, and ` absolute` when paths may leave it.
 */
export function sftpDestination(inputs: Record<string, unknown>): string | undefined {
  const address = sshAddress(inputs);
  if (address === undefined) return undefined;
  const root = typeof inputs.root === 'string' ? inputs.root : '.';
  return `${address} root=${root}${inputs.allow_absolute_paths === true ? ' absolute' : ''}`;
}

/** One entry of a folder, or the facts of one path. */
export interface SftpEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  /** Permissions as octal text, e.g. `0644`. */
  mode: string;
  /** Last modification, ISO 8601. */
  modified: string;
}

function typeOf(stats: Stats): SftpEntry['type'] {
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'file';
  return 'other';
}

function entry(name: string, stats: Stats): SftpEntry {
  return { name, type: typeOf(stats), size: stats.size, mode: (stats.mode & 0o7777).toString(8).padStart(4, '0'), modified: new Date(stats.mtime * 1000).toISOString() };
}

/** SFTP's status codes (draft-ietf-secsh-filexfer-02), as ssh2 reports them in `code`. */
const SFTP_STATUS: Record<number, string> = {
  2: 'does not exist',
  3: 'permission denied',
  4: 'the server refused the operation (it exists already, a folder is not empty, or another failure)',
  8: 'the server does not support this operation',
};

/** A failure of the file operation on `field`; a failure of the connection is the transport's. */
class PathError extends Error {
  constructor(
    readonly field: string,
    readonly shown: string,
    /** What the SFTP client reported. */
    readonly reason: unknown,
  ) {
    super(`${field} failed`);
  }
}

function promised<T>(run: (done: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** Paths of one call, resolved under the canonical root, and the checks that keep them there. */
class Paths {
  private constructor(
    private readonly sftp: SFTPWrapper,
    private readonly inputs: SftpInputs,
    /** The canonical absolute root, symbolic links resolved. */
    readonly root: string,
  ) {}

  static async open(sftp: SFTPWrapper, inputs: SftpInputs): Promise<Paths> {
    const root = await promised<string>((done) => sftp.realpath(inputs.root, done)).catch((err: unknown) => {
      throw new PathError('root', inputs.root, err);
    });
    return new Paths(sftp, inputs, root);
  }

  /** Whether the absolute path `absolute` is `root` or below it. */
  inside(absolute: string): boolean {
    if (this.inputs.allow_absolute_paths) return true;
    return absolute === this.root || absolute.startsWith(this.root === '/' ? '/' : `${this.root}/`);
  }

  /**
   * The absolute path of `given` (the input `field`), without touching the server: refuses an
   * absolute path and any `..` segment, unless the profile allows absolute paths.
   */
  resolve(field: string, given: string): string {
    if (given.startsWith('/')) {
      if (this.inputs.allow_absolute_paths) return posix.normalize(given);
      throw permanentFailure(FailureType.InvalidInput, `${field}: "${given}" is absolute, and paths are relative to root (the profile's allow_absolute_paths would allow absolute ones)`, { field });
    }
    if (given.split('/').includes('..')) {
      throw permanentFailure(FailureType.InvalidInput, `${field}: "${given}" contains "..", and paths may not leave root`, { field });
    }
    return posix.join(this.root, given);
  }

  /**
   * Refuses `absolute` when the server resolves it (symbolic links followed) to a place outside
   * root. `mustExist: false` checks the parent folder instead of a path that need not exist yet.
   */
  async staysInside(field: string, given: string, absolute: string, options: { mustExist: boolean }): Promise<string> {
    const checked = options.mustExist ? absolute : posix.dirname(absolute);
    const real = await promised<string>((done) => this.sftp.realpath(checked, done)).catch((err: unknown) => {
      throw new PathError(field, options.mustExist ? given : posix.dirname(given), err);
    });
    if (!this.inside(real)) {
      throw permanentFailure(
        FailureType.InvalidInput,
        `${field}: "${given}" leads outside root through a symbolic link${options.mustExist ? '' : ' in its folder'}, and paths may not leave root`,
        { field },
      );
    }
    return options.mustExist ? real : posix.join(real, posix.basename(absolute));
  }
}

/** Reads at most `limit` + 1 bytes of `path`, so that a file that grew since its stat is still caught. */
function readBounded(sftp: SFTPWrapper, path: string, limit: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stream = sftp.createReadStream(path, { start: 0, end: limit });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

function modeOf(mode: SftpInputs['mode'], fallback: number): number {
  if (mode === undefined) return fallback;
  return typeof mode === 'number' ? mode : parseInt(mode, 8);
}

function tooLarge(field: string, shown: string, bytes: number): ApplicationFailure {
  return permanentFailure(
    FailureType.InvalidInput,
    `${field}: "${shown}" is ${bytes} bytes, over the inline limit of ${MAX_INLINE_BYTES} bytes (1 MiB) of the SFTP connector; move larger files another way`,
    { field, bytes, limit: MAX_INLINE_BYTES },
  );
}

function requirePath(inputs: SftpInputs, field: 'path' | 'to', subject: string): string {
  const value = inputs[field];
  if (value === undefined) throw permanentFailure(FailureType.InvalidInput, `${subject}: operation ${inputs.operation} needs ${field}`, { field });
  return value;
}

/** One operation on an open SFTP session. */
async function operate(sftp: SFTPWrapper, inputs: SftpInputs, subject: string): Promise<unknown> {
  const paths = await Paths.open(sftp, inputs);
  const op = inputs.operation;
  const given = op === 'list' || op === 'stat' ? (inputs.path ?? '.') : requirePath(inputs, 'path', subject);
  const absolute = paths.resolve('path', given);
  switch (op) {
    case 'list': {
      const folder = await paths.staysInside('path', given, absolute, { mustExist: true });
      const list = await promised<FileEntryWithStats[]>((done) => sftp.readdir(folder, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      const entries = list
        .filter((e) => e.filename !== '.' && e.filename !== '..')
        .map((e) => entry(e.filename, e.attrs))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return { path: given, entries: entries.slice(0, MAX_LIST_ENTRIES), truncated: entries.length > MAX_LIST_ENTRIES };
    }
    case 'stat': {
      const real = await paths.staysInside('path', given, absolute, { mustExist: true });
      const stats = await promised<Stats>((done) => sftp.stat(real, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      return { path: given, ...entry(posix.basename(absolute), stats) };
    }
    case 'get': {
      const real = await paths.staysInside('path', given, absolute, { mustExist: true });
      const stats = await promised<Stats>((done) => sftp.stat(real, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      if (!stats.isFile()) throw permanentFailure(FailureType.InvalidInput, `path: "${given}" is not a file (it is a ${typeOf(stats)})`, { field: 'path' });
      if (stats.size > MAX_INLINE_BYTES) throw tooLarge('path', given, stats.size);
      const bytes = await readBounded(sftp, real, MAX_INLINE_BYTES).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      if (bytes.length > MAX_INLINE_BYTES) throw tooLarge('path', given, bytes.length);
      let content: string;
      if (inputs.encoding === 'base64') content = bytes.toString('base64');
      else {
        try {
          content = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        } catch {
          throw permanentFailure(FailureType.InvalidInput, `path: "${given}" is not UTF-8 text: get it with encoding: base64`, { field: 'encoding' });
        }
      }
      return { path: given, size: bytes.length, encoding: inputs.encoding, content };
    }
    case 'put': {
      if (inputs.content === undefined) throw permanentFailure(FailureType.InvalidInput, `${subject}: operation put needs content`, { field: 'content' });
      const bytes = Buffer.from(inputs.content, inputs.encoding === 'base64' ? 'base64' : 'utf8');
      if (bytes.length > MAX_INLINE_BYTES) throw tooLarge('content', `the content for ${given}`, bytes.length);
      const target = await paths.staysInside('path', given, absolute, { mustExist: false });
      // An existing symbolic link at the path would be written through: refused when it leads outside.
      const existing = await promised<Stats>((done) => sftp.lstat(target, done)).catch(() => undefined);
      if (existing?.isSymbolicLink()) await paths.staysInside('path', given, target, { mustExist: true });
      const mode = modeOf(inputs.mode, 0o644);
      await promised<void>((done) => sftp.writeFile(target, bytes, { mode, flag: 'w' }, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      // `mode` of the open applies to a new file only; a given mode applies to an existing one too.
      if (inputs.mode !== undefined) {
        await promised<void>((done) => sftp.chmod(target, mode, done)).catch((err: unknown) => {
          throw new PathError('mode', given, err);
        });
      }
      return { path: given, size: bytes.length };
    }
    case 'mkdir': {
      const target = await paths.staysInside('path', given, absolute, { mustExist: false });
      await promised<void>((done) => sftp.mkdir(target, { mode: modeOf(inputs.mode, 0o755) }, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      return { path: given, created: true };
    }
    case 'rename': {
      const to = requirePath(inputs, 'to', subject);
      const from = await paths.staysInside('path', given, absolute, { mustExist: false });
      const target = await paths.staysInside('to', to, paths.resolve('to', to), { mustExist: false });
      await promised<void>((done) => sftp.rename(from, target, done)).catch((err: unknown) => {
        throw new PathError('path', `${given} → ${to}`, err);
      });
      return { path: given, to };
    }
    case 'remove': {
      if (absolute === paths.root) throw permanentFailure(FailureType.InvalidInput, `path: "${given}" is root itself, which remove does not delete`, { field: 'path' });
      // The link itself is removed, never what it points to, so only its folder must be inside root.
      const target = await paths.staysInside('path', given, absolute, { mustExist: false });
      const stats = await promised<Stats>((done) => sftp.lstat(target, done)).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      const folder = stats.isDirectory();
      await promised<void>((done) => (folder ? sftp.rmdir(target, done) : sftp.unlink(target, done))).catch((err: unknown) => {
        throw new PathError('path', given, err);
      });
      return { path: given, removed: folder ? 'directory' : typeOf(stats) };
    }
  }
}

/** The failure of an operation: the path and what the server said; never a credential. */
function operationFailure(err: unknown, inputs: SftpInputs, subject: string): unknown {
  if (err instanceof PathError) {
    const code = (err.reason as { code?: unknown })?.code;
    const said = typeof code === 'number' ? SFTP_STATUS[code] : undefined;
    if (said) return permanentFailure(FailureType.External, `${subject}: ${inputs.operation} ${err.field} "${err.shown}": ${said}`, { field: err.field, sftp_status: code });
    return connectionFailure(err.reason, inputs, `${subject}: ${inputs.operation} ${err.field} "${err.shown}"`);
  }
  return connectionFailure(err, inputs, subject);
}

function openSftp(client: Client): Promise<SFTPWrapper> {
  return promised<SFTPWrapper>((done) => client.sftp(done));
}

/** Runs `use` on an SFTP session of a connection (pooled for stored connectors); ends it after, and on cancellation. */
async function withSftp<T>(inputs: SftpInputs, ctx: InvokeContext, pools: SshPools, use: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
  const subject = subjectOf('SFTP', inputs, ctx);
  let session;
  try {
    session = await openSession('SFTP', inputs, ctx, pools);
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw connectionFailure(err, inputs, subject);
  }
  let sftp: SFTPWrapper | undefined;
  let broken = false;
  const onAbort = () => sftp?.end();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    sftp = await openSftp(session.client).catch((err: unknown) => {
      broken = true;
      throw permanentFailure(FailureType.External, `${subject}: the server offers no SFTP subsystem (${err instanceof Error ? err.message : String(err)})`);
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return await use(sftp);
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (!(err instanceof PathError) && !(err instanceof ApplicationFailure)) broken = true;
    throw operationFailure(err, inputs, subject);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    sftp?.end();
    session.done(broken);
  }
}

/** What `introspect` returns: the tree below root, two levels deep. */
export interface SftpIntrospection {
  root: string;
  entries: Array<SftpEntry & { children?: SftpEntry[] }>;
  /** More entries than {@link INTROSPECTION_ENTRIES} exist; the rest are left out. */
  truncated: boolean;
}

async function introspectTree(sftp: SFTPWrapper, inputs: SftpInputs): Promise<SftpIntrospection> {
  const paths = await Paths.open(sftp, inputs);
  let budget = INTROSPECTION_ENTRIES;
  let truncated = false;
  const listing = async (folder: string, depth: number): Promise<Array<SftpEntry & { children?: SftpEntry[] }>> => {
    const list = await promised<FileEntryWithStats[]>((done) => sftp.readdir(folder, done)).catch(() => []);
    const entries = list
      .filter((e) => e.filename !== '.' && e.filename !== '..')
      .map((e) => entry(e.filename, e.attrs))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const shown: Array<SftpEntry & { children?: SftpEntry[] }> = [];
    for (const item of entries) {
      if (budget <= 0) {
        truncated = true;
        break;
      }
      budget -= 1;
      // Symbolic links are listed, never followed: they may lead outside root.
      shown.push(item.type === 'directory' && depth < INTROSPECTION_DEPTH ? { ...item, children: await listing(posix.join(folder, item.name), depth + 1) } : item);
    }
    return shown;
  };
  return { root: paths.root, entries: await listing(paths.root, 1), truncated };
}

async function testSftp(inputs: SftpInputs, ctx: InvokeContext, pools: SshPools): Promise<ConnectionTestResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const address = `${inputs.host}:${inputs.port}`;
  const subject = subjectOf('SFTP', inputs, ctx);
  if (pinnedHostKeys(inputs.host_key).length === 0) return { ...(await reportOfferedHostKey(inputs, ctx, subject)), latency_ms: elapsed() };
  try {
    // Never pooled: the test proves that these inputs can log in now.
    const root = await withSftp(inputs, { ...ctx, poolKey: undefined }, pools, async (sftp) => (await Paths.open(sftp, inputs)).root);
    const latency = elapsed();
    return { ok: true, message: `Logged in to ${address} as ${inputs.user} (host key pinned); SFTP root ${root} in ${latency} ms`, latency_ms: latency };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { ok: false, message: testFailureMessage(err, connectionFailure(err, inputs, subject), address), latency_ms: elapsed() };
  }
}

/** Options of {@link createSftpConnector}. */
export interface SftpConnectorOptions {
  /** How long pooled connections are kept, and how many (connectors/pools.ts). Default: closed after 60 s unused, at most 50. */
  pools?: PoolOptions;
}

/** Creates the SFTP type with its own connection pools; `sftpConnector` is the one workers use. */
export function createSftpConnector(options: SftpConnectorOptions = {}): ConnectorType<typeof sftpSchema> {
  const pools = createSshPools(options.pools);
  return {
    name: 'SFTP',
    description: 'Files on a remote host over SFTP (list, stat, get, put, mkdir, rename, remove), within a root folder, with a pinned host key.',
    schema: sftpSchema,
    // Marked on the fields (ssh-transport.ts), and derived from there.
    sensitive: SFTP_SENSITIVE,
    invoke: (inputs, ctx) => withSftp(inputs, ctx, pools, (sftp) => operate(sftp, inputs, subjectOf('SFTP', inputs, ctx))),
    test: (inputs, ctx) => testSftp(inputs, ctx, pools),
    introspect: (inputs, ctx) => withSftp(inputs, ctx, pools, (sftp) => introspectTree(sftp, inputs)),
    describeCall(inputs) {
      if (typeof inputs.host !== 'string' || typeof inputs.user !== 'string') return undefined;
      const operation = typeof inputs.operation === 'string' ? inputs.operation : 'list';
      return `sftp ${inputs.user}@${inputs.host}: ${operation}`;
    },
    destination: sftpDestination,
    close: (poolKey) => pools.close(poolKey),
    pools,
  };
}

/** The SFTP connector type. */
export const sftpConnector: ConnectorType<typeof sftpSchema> = createSftpConnector();
