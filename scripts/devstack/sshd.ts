// A real OpenSSH server for the SSH and SFTP connector tests: Debian's `openssh-server`, installed
// with apt-get when missing (as root), started with a configuration, host key and authorized_keys of
// its own on a free loopback port, and stopped afterwards. Nothing of the system's own sshd (its
// /etc/ssh configuration, its host keys, port 22) is used or changed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { aptInstall, canAptInstall } from './apt';
import { findOnPath, isExecutable } from './binaries';
import { freePort, startServerProcess } from './process';

const run = promisify(execFile);

/** Where Debian's `openssh-server` puts the daemon. sshd must be started by its absolute path (it re-executes itself). */
export const SSHD_PATH = '/usr/sbin/sshd';

/**
 * The path of `sshd`, installing Debian's `openssh-server` with apt-get when it is missing (as root;
 * about half a minute, first run only). Debian's package would start the system's own ssh service on
 * port 22 after installing, unless `/usr/sbin/policy-rc.d` forbids it (as in containers); the tests
 * never use that service.
 */
export async function ensureSshd(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<string> {
  if (await isExecutable(SSHD_PATH)) return SSHD_PATH;
  if (!(await canAptInstall())) {
    throw new Error(
      `OpenSSH's server is needed for the SSH and SFTP tests and was not found at ${SSHD_PATH}. ` +
        "Install Debian's package (apt-get install openssh-server); as root the test setup installs it itself.",
    );
  }
  const started = Date.now();
  await aptInstall(['openssh-server'], log);
  if (!(await isExecutable(SSHD_PATH))) throw new Error(`apt-get installed openssh-server, but ${SSHD_PATH} is not there afterwards.`);
  log(`[devstack] openssh-server installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return SSHD_PATH;
}

/** The OpenSSH fingerprint of a public key blob: `SHA256:` and the unpadded Base64 of its SHA-256, as `ssh-keygen -l` prints it. */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprint of a public key line (`ssh-ed25519 AAAA… comment`). */
export function fingerprintOfPublicKey(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (!blob) throw new Error('not an OpenSSH public key line');
  return fingerprintOfBlob(Buffer.from(blob, 'base64'));
}

/** A key pair made by `ssh-keygen`, in OpenSSH's formats. */
export interface SshKeyPair {
  /** The private key, PEM-like text (`-----BEGIN OPENSSH PRIVATE KEY-----`). */
  privateKey: string;
  /** The public key line, for authorized_keys. */
  publicKey: string;
  fingerprint: string;
}

/** Makes a key pair with `ssh-keygen` (`type` ed25519 by default, or rsa), encrypted with `passphrase` when given. */
export async function generateKeyPair(options: { type?: 'ed25519' | 'rsa'; passphrase?: string; comment?: string } = {}): Promise<SshKeyPair> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tc-sshkey-'));
  try {
    const file = path.join(dir, 'key');
    const type = options.type ?? 'ed25519';
    await run('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', options.passphrase ?? '', '-C', options.comment ?? 'temporal-connectors test', '-f', file]);
    const publicKey = readFileSync(`${file}.pub`, 'utf8').trim();
    return { privateKey: readFileSync(file, 'utf8'), publicKey, fingerprint: fingerprintOfPublicKey(publicKey) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Options of {@link startSshd}. */
export interface SshdOptions {
  /**
   * The system user the server lets in, created (with a home folder and /bin/sh) when it does not
   * exist. Use one per test file: its password is set on every start. Default `tc_ssh`.
   */
  user?: string;
  /** The user's password (set with chpasswd), for password authentication. Default: a random one, not told. */
  password?: string;
  /** Public key lines the server accepts for the user. Default: none. */
  authorizedKeys?: string[];
  /** Receives every line the server logs (LogLevel DEBUG1). Default: kept in memory only. */
  onLine?: (line: string) => void;
}

/** A running sshd of a test's own. */
export interface TestSshd {
  host: '127.0.0.1';
  port: number;
  user: string;
  /** The user's home folder. */
  home: string;
  /** A folder of the server's own that the user owns (for SFTP roots). */
  files: string;
  /** Fingerprint of the server's host key, as a connector pins it (`SHA256:…`). */
  hostKeyFingerprint: string;
  /** Every line the server logged so far (it forks per connection; with `-e` all of them log here). */
  logLines(): string[];
  stop(): Promise<void>;
}

async function ensureUser(user: string, password: string): Promise<string> {
  try {
    await run('id', ['-u', user]);
  } catch {
    // -m: a home folder, where the introspection reads `$HOME`; /bin/sh: the connector's commands are POSIX shell.
    await run('useradd', ['-m', '-s', '/bin/sh', user]).catch(async (err: unknown) => {
      // Another test file created it meanwhile: fine.
      await run('id', ['-u', user]).catch(() => {
        throw err;
      });
    });
  }
  await new Promise<void>((resolve, reject) => {
    const child = execFile('chpasswd', (err) => (err ? reject(err) : resolve()));
    child.stdin!.end(`${user}:${password}\n`);
  });
  const { stdout } = await run('getent', ['passwd', user]);
  return stdout.trim().split(':')[5];
}

/**
 * Starts `sshd -D -e -f <own config>` on a free port of 127.0.0.1 with a throwaway ed25519 host key,
 * password and public-key authentication for one user, the internal SFTP server, and DEBUG1 logging
 * (so a test can see every authentication attempt). Needs root (sshd switches to the user).
 */
export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  const sshd = await ensureSshd();
  if (!(await findOnPath('ssh-keygen'))) throw new Error('ssh-keygen is not on PATH (Debian package openssh-client).');
  const user = options.user ?? 'tc_ssh';
  const password = options.password ?? createHash('sha256').update(`${Math.random()}${Date.now()}`).digest('hex');
  const home = await ensureUser(user, password);
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const gid = Number((await run('id', ['-g', user])).stdout.trim());

  const dir = mkdtempSync(path.join(tmpdir(), 'tc-sshd-'));
  // sshd reads authorized_keys as the user, so the folder must be open to it; nothing in it is secret.
  chmodSync(dir, 0o755);
  const files = path.join(dir, 'files');
  mkdirSync(files);
  chownSync(files, uid, gid);
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tc-test-host', '-f', hostKey]);
  const hostKeyFingerprint = fingerprintOfPublicKey(readFileSync(`${hostKey}.pub`, 'utf8'));
  const authorizedKeys = path.join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, (options.authorizedKeys ?? []).map((k) => `${k.trim()}\n`).join(''), { mode: 0o644 });
  // The privilege separation folder; Debian's service creates it at boot, which a test machine may never have done.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `AllowUsers ${user}`,
      'PasswordAuthentication yes',
      'PubkeyAuthentication yes',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      'UsePAM no',
      // The files live in a temporary folder (under world-writable /tmp), which StrictModes refuses.
      'StrictModes no',
      'LogLevel DEBUG1',
      'Subsystem sftp internal-sftp',
      'MaxSessions 20',
      'MaxStartups 50',
      'MaxAuthTries 6',
      '',
    ].join('\n'),
  );

  const lines: string[] = [];
  let listening = false;
  const server = await startServerProcess({
    displayName: `sshd on 127.0.0.1:${port}`,
    executable: sshd,
    args: ['-D', '-e', '-f', config],
    env: { PATH: process.env.PATH },
    startupTimeoutMs: 20_000,
    onLine: (line) => {
      lines.push(line);
      if (line.includes(`Server listening on 127.0.0.1 port ${port}`)) listening = true;
      options.onLine?.(line);
    },
    isReady: async () => listening,
  });
  return {
    host: '127.0.0.1',
    port,
    user,
    home,
    files,
    hostKeyFingerprint,
    logLines: () => [...lines],
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
