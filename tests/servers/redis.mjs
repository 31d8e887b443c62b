// A real redis-server for the store tests (issue 18): Debian's redis-server package (`make
// setup-redis` installs it), on a free loopback port, with no persistence, stopped afterwards.
// See README.md beside this file.
//
//   const redis = await startRedis();      // { url, port, stop(), kill(), restart() }
//   ... redis://127.0.0.1:<port> ...
//   await redis.stop();
import { spawn } from 'node:child_process';
import net from 'node:net';
import { tmpdir } from 'node:os';

const READY_MS = 10_000;

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves true when the redis-server answering on `port` is process `pid` (INFO server's
 * process_id: another server on that port does not count), false when none answers (yet).
 */
function answers(port, pid) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok) => (socket.destroy(), resolve(ok));
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (d) => {
      answer += d;
      const m = /process_id:(\d+)\r\n/.exec(answer);
      if (m) done(Number(m[1]) === pid);
    });
  });
}

/**
 * Starts `redis-server` on `port` (a free loopback port when not given) and resolves once it
 * answers (it, not another server on that port: INFO's process_id): `{ url, port, stop(), kill(), restart() }`. stop() ends it with SIGTERM and
 * kill() with SIGKILL, each resolving once it has exited; restart() starts it again on the same
 * port (after either). Nothing is written to disk (`--save "" --appendonly no`).
 */
export async function startRedis({ port } = {}) {
  port ??= await freePort();
  let child = null;

  async function launch() {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', tmpdir()],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const keep = (d) => (output = (output + d).slice(-4000));
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const spawnError = new Promise((resolve) => proc.once('error', (e) => resolve(e)));
    proc.exited = exited;
    child = proc;
    const deadline = Date.now() + READY_MS;
    for (;;) {
      const early = await Promise.race([exited, spawnError, answers(port, proc.pid).then((ok) => (ok ? 'ready' : null))]);
      if (early === 'ready') return;
      if (early instanceof Error) throw new Error(`redis-server could not start (${early.message}); run make setup-redis`);
      if (early) throw new Error(`redis-server exited (${JSON.stringify(early)}) before answering on port ${port}:\n${output}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not answer on port ${port} within ${READY_MS} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function end(signal) {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    await proc.exited;
  }

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    async restart() {
      await end('SIGTERM');
      await launch();
    },
  };
}
